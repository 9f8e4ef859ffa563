// aclip.h: A-CLIP (aclip-method.md sections 3 to 6) and the baselines of its ablations, in one model.
// The online CLIP and SSL heads learn; the EMA copies (ema.visual, ema.transformer, ema.text_projection,
// ema.ssl.byol_projector) follow them by momentum and are updated before the EMA forward of each step.
// One step: EMA update -> EMA tower on the zoom-out crop (attention score, BYOL target) -> a mask per
// view -> the online tower on both views with their kept patches -> text tower -> the loss terms.
#pragma once
#include <cstdint>
#include <string>

#include "engine/dist/comm.h"
#include "engine/optim/adamw.h"
#include "models/attentive_mask.h"
#include "models/clip.h"
#include "models/ssl_heads.h"

namespace aclip {

enum class MaskMode { None, Attentive, Random };
enum class SimclrPairs { Views, Official };  // view 1 vs view 2, or the official code's view 1 vs itself

struct AclipConfig {
    ClipConfig clip;
    SslConfig ssl;
    MaskMode mask = MaskMode::Attentive;
    int64_t mask_block = 2;
    double keep_ratio = 0.5;  // attentive: of the squares (+1); random: of the patches
    int views = 2;            // online views per image: 1 (plain CLIP, random mask 1x) or 2
    bool ssl_losses = true;   // SimCLR and BYOL
    double clip_weight = 1.0, simclr_weight = 1.0, byol_weight = 2.0;  // CLIP: times the mean over views
    double simclr_tau = 0.1;
    SimclrPairs simclr_pairs = SimclrPairs::Views;
    double ema_base = 0.996;
    bool needs_ema() const { return mask == MaskMode::Attentive || ssl_losses; }
};

struct AclipBatch {
    Tensor view1, view2, ema_view;  // (B, 3, S, S) each; view2 and ema_view may be undefined if unused
    Tensor boxes;                   // (B, 3, 4) i64: (top, left, h, w) of view 1, view 2, EMA crop
    Tensor text;                    // (B, C) i64 token ids
    uint64_t mask_seed = 0, mask_offset = 0;  // the random mask's stream
};

struct AclipStep {
    Tensor loss;                        // [] total
    Tensor clip1, clip2, simclr, byol;  // [] each, undefined when not computed
    Tensor attn;                        // (B, N) EMA attention score (attentive mode)
    Tensor keep1, keep2;                // (B, K) kept patches per view (masked modes)
};

class EmaSsl : public Module {
  public:
    EmaSsl(int64_t width, const SslConfig& cfg, Generator& gen)
        : byol_projector(width, cfg.byol_hidden, cfg.byol_dim, false, false, gen) {}
    void visit(Visitor& v) override { v.child("byol_projector", byol_projector); }
    BnMlp byol_projector;
};

// The momentum copies, named ema.* in checkpoints.
class EmaModules : public Module {
  public:
    EmaModules(const AclipConfig& cfg, Generator& gen);
    void visit(Visitor& v) override;
    VisionTransformer visual;
    Transformer transformer;
    Tensor text_projection;  // (T, E)
    EmaSsl ssl;
    bool with_ssl;  // the SSL losses are on: ema.ssl.* is part of the model
};

class Aclip : public Module {
  public:
    Aclip(const AclipConfig& cfg, Generator& gen);
    void visit(Visitor& v) override;

    // One training forward with EMA momentum m (see ema_momentum; 1 leaves the teacher as it is, as for
    // the later micro-batches of an accumulated step); returns the loss terms.
    AclipStep forward(const AclipBatch& batch, double m);
    void update_ema(double m);  // theta_ema = m theta_ema + (1 - m) theta_online (no gradient)
    // AdamW groups by the official rule: no weight decay for biases, norms and 1-D tensors (except
    // the CLS token, which timm stores 3-D); frozen parameters are left out.
    std::vector<ParamGroup> param_groups(double weight_decay);

    // Data-parallel ranks: the contrastive losses gather every rank's embeddings and the BatchNorms of
    // the SSL heads (online and EMA) use every rank's statistics. Null: this process alone.
    void set_comm(Comm* c);

    // Gradient checkpointing of the online towers' transformer blocks (the EMA teacher records nothing).
    void set_grad_checkpointing(bool on);

    AclipConfig cfg;
    Comm* comm = nullptr;
    Clip clip;
    SslHeads ssl;
    std::unique_ptr<EmaModules> ema;  // null when the mode needs no EMA
};

// Cosine momentum schedule, per step without warmup: 1 - (1 - base)(1 + cos(pi step / total)) / 2.
double ema_momentum(int64_t step, int64_t total_steps, double base);

}  // namespace aclip
