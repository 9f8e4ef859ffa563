// checkpoint.h: model files. NAME.model.safetensors holds every parameter and buffer under the names of
// architecture.md, plus the __metadata__ that shapes cannot carry (heads, activations, LayerNorm eps,
// ln_pre, image normalisation, tokenizer truncation, the run's INI text), so a checkpoint loads without
// its config: config_from_checkpoint rebuilds the architecture from shapes and metadata.
#pragma once
#include <map>
#include <string>

#include "engine/io/safetensors.h"
#include "models/aclip.h"

namespace aclip {

// The metadata of architecture.md decision 5 for this model; ini_text is the run's config, verbatim.
std::map<std::string, std::string> model_metadata(const AclipConfig& cfg, const std::string& ini_text = {});

// Writes every parameter and buffer of model (atomically) with the metadata.
void save_model(const std::string& path, Module& model, const std::map<std::string, std::string>& metadata);

// The architecture stored in a checkpoint (sizes from shapes, the rest from metadata). Training-only
// options (loss weights, mask mode) keep their defaults, except that a file without SSL heads or EMA
// copies gives a plain CLIP configuration.
AclipConfig config_from_checkpoint(const SafetensorsFile& file);

// Copies the file's tensors into model. Strict: a missing, unexpected or mis-shaped tensor is an error
// naming it and the file.
void load_state(Module& model, const SafetensorsFile& file);

}  // namespace aclip
