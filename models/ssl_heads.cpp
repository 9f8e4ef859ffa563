// ssl_heads.cpp: see ssl_heads.h. Linear layers keep PyTorch's default init, as the official code does.
#include "models/ssl_heads.h"

namespace aclip {

BnMlp::BnMlp(int64_t in, int64_t hidden, int64_t out, bool three_layers, bool bias, Generator& gen) {
    fcs.push_back(std::make_unique<Linear>(in, hidden, bias, gen));
    bns.push_back(std::make_unique<BatchNorm1d>(hidden));
    if (three_layers) {
        fcs.push_back(std::make_unique<Linear>(hidden, hidden, bias, gen));
        bns.push_back(std::make_unique<BatchNorm1d>(hidden));
    }
    fcs.push_back(std::make_unique<Linear>(hidden, out, bias, gen));
}

Tensor BnMlp::forward(const Tensor& x) {
    Tensor h = x;
    for (size_t i = 0; i < bns.size(); ++i) h = relu(bns[i]->forward(fcs[i]->forward(h)));
    return fcs.back()->forward(h);
}

void BnMlp::visit(Visitor& v) {
    for (size_t i = 0; i < fcs.size(); ++i) {
        v.child("fc" + std::to_string(i + 1), *fcs[i]);
        if (i < bns.size()) v.child("bn" + std::to_string(i + 1), *bns[i]);
    }
}

SslHeads::SslHeads(int64_t width, const SslConfig& c, Generator& gen)
    : simclr_mlp(width, c.simclr_hidden, c.simclr_dim, true, true, gen),
      byol_projector(width, c.byol_hidden, c.byol_dim, false, false, gen),
      byol_predictor(c.byol_dim, c.byol_hidden, c.byol_dim, false, false, gen) {}

void SslHeads::visit(Visitor& v) {
    v.child("simclr_mlp", simclr_mlp);
    v.child("byol_projector", byol_projector);
    v.child("byol_predictor", byol_predictor);
}

}  // namespace aclip
