// ssl_heads.h: A-CLIP's self-supervised heads on the online CLS token (aclip-method.md 1.3):
// the SimCLR projector (Linear-BN-ReLU twice, then Linear) and the BYOL projector and predictor
// (Linear-BN-ReLU-Linear, no biases). BatchNorms use batch statistics in training.
#pragma once
#include "engine/nn/layers.h"

namespace aclip {

// fc1 -> bn1 -> ReLU -> fc2 [-> bn2 -> ReLU -> fc3]: two or three Linear layers with BatchNorm between.
class BnMlp : public Module {
  public:
    BnMlp(int64_t in, int64_t hidden, int64_t out, bool three_layers, bool bias, Generator& gen);
    Tensor forward(const Tensor& x);
    void visit(Visitor& v) override;

    std::vector<std::unique_ptr<Linear>> fcs;
    std::vector<std::unique_ptr<BatchNorm1d>> bns;
};

struct SslConfig {
    int64_t simclr_hidden = 4096, simclr_dim = 256;
    int64_t byol_hidden = 4096, byol_dim = 256;
};

// The online heads, named ssl.simclr_mlp.*, ssl.byol_projector.*, ssl.byol_predictor.*.
class SslHeads : public Module {
  public:
    SslHeads(int64_t width, const SslConfig& cfg, Generator& gen);
    void visit(Visitor& v) override;

    BnMlp simclr_mlp;      // W -> hidden -> hidden -> simclr_dim, with biases
    BnMlp byol_projector;  // W -> hidden -> byol_dim, no biases
    BnMlp byol_predictor;  // byol_dim -> hidden -> byol_dim, no biases
};

}  // namespace aclip
