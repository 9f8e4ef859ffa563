// aclip.cpp: see aclip.h.
#include "models/aclip.h"

#include <cmath>
#include <optional>

#include "engine/autograd/grad_mode.h"
#include "engine/core/host_copy.h"
#include "engine/ops/autocast.h"
#include "models/losses.h"

namespace aclip {

double ema_momentum(int64_t step, int64_t total, double base) {
    return 1.0 -
           (1.0 - base) * (1.0 + std::cos(M_PI * static_cast<double>(step) / static_cast<double>(total))) / 2;
}

EmaModules::EmaModules(const AclipConfig& c, Generator& gen)
    : visual(c.clip.vision, gen),
      transformer(c.clip.text.width, c.clip.text.layers, c.clip.text.heads,
                  c.clip.text.mlp_ratio * c.clip.text.width, c.clip.text.act, c.clip.text.ln_eps, gen),
      ssl(c.clip.vision.width, c.ssl, gen),
      with_ssl(c.ssl_losses) {
    text_projection = empty({c.clip.text.width, c.clip.text.embed_dim});
}

void EmaModules::visit(Visitor& v) {
    v.child("visual", visual);
    v.child("transformer", transformer);
    v.param("text_projection", text_projection);
    if (with_ssl) v.child("ssl", ssl);
}

namespace {

std::vector<Tensor> params_of(Module& m) {
    std::vector<Tensor> out;
    for (auto& p : m.named_parameters()) out.push_back(*p.tensor);
    return out;
}

}  // namespace

Aclip::Aclip(const AclipConfig& c, Generator& gen)
    : cfg(c), clip(c.clip, gen), ssl(c.clip.vision.width, c.ssl, gen) {
    AC_CHECK(c.views == 1 || c.views == 2, "AclipConfig: views must be 1 or 2, got ", c.views);
    AC_CHECK(!c.ssl_losses || c.views == 2, "AclipConfig: the SSL losses need two views");
    if (!c.needs_ema()) return;
    Generator scratch(0);  // EMA weights are copied from the online ones below
    ema = std::make_unique<EmaModules>(c, scratch);
    copy_state(ema->visual, clip.visual);
    copy_state(ema->transformer, clip.text.transformer);
    if (c.ssl_losses) copy_state(ema->ssl.byol_projector, ssl.byol_projector);
    NoGradGuard no_grad;
    ema->text_projection.copy_(clip.text.text_projection);
    ema->set_requires_grad(false);
}

void Aclip::visit(Visitor& v) {
    clip.visit(v);
    if (cfg.ssl_losses) v.child("ssl", ssl);  // without the SSL losses the heads are not part of the model
    if (ema) v.child("ema", *ema);
}

void Aclip::set_comm(Comm* c) {
    comm = c;
    std::vector<BnMlp*> heads = {&ssl.simclr_mlp, &ssl.byol_projector, &ssl.byol_predictor};
    if (ema) heads.push_back(&ema->ssl.byol_projector);
    for (BnMlp* h : heads)
        for (auto& bn : h->bns) bn->comm = c;
}

void Aclip::set_grad_checkpointing(bool on) {
    clip.visual.transformer.grad_checkpointing = on;
    clip.text.transformer.grad_checkpointing = on;
}

void Aclip::update_ema(double m) {
    if (!ema || m == 1.0) return;  // momentum 1: the teacher stays as it is
    // Under autocast the teacher's products take bf16 copies of its weights: written by the update.
    const bool copies = autocast_enabled();
    ema_update(params_of(ema->visual), params_of(clip.visual), m, copies);
    ema_update(params_of(ema->transformer), params_of(clip.text.transformer), m, copies);
    ema_update({ema->text_projection}, {clip.text.text_projection}, m, copies);
    if (cfg.ssl_losses)
        ema_update(params_of(ema->ssl.byol_projector), params_of(ssl.byol_projector), m, copies);
}

std::vector<ParamGroup> Aclip::param_groups(double weight_decay) {
    ParamGroup decay{{}, weight_decay}, no_decay{{}, 0.0};
    for (auto& p : named_parameters()) {
        if (!p.tensor->requires_grad()) continue;  // frozen: patch embedding, EMA copies
        const std::string& n = p.name;
        bool is_cls = n.size() >= 15 && n.compare(n.size() - 15, 15, "class_embedding") == 0;
        bool excluded = n.find("bias") != std::string::npos || n.find("ln") != std::string::npos ||
                        n.find("bn") != std::string::npos || (p.tensor->dim() < 2 && !is_cls);
        (excluded ? no_decay : decay).params.push_back(*p.tensor);
    }
    return {decay, no_decay};
}

AclipStep Aclip::forward(const AclipBatch& batch, double m) {
    AclipStep out;
    const int64_t B = batch.view1.size(0);
    const int64_t N = cfg.clip.vision.num_patches();
    MaskConfig mask_cfg{cfg.clip.vision.grid(), cfg.mask_block, cfg.keep_ratio};

    // 1. The EMA teacher, before anything learns from this batch.
    Tensor byol_target;
    if (ema) {
        update_ema(m);
        NoGradGuard no_grad;
        VisionOutput teacher = ema->visual.forward(batch.ema_view, {}, cfg.mask == MaskMode::Attentive);
        out.attn = teacher.attn_cls;                                                     // (B, N)
        if (cfg.ssl_losses) byol_target = ema->ssl.byol_projector.forward(teacher.cls);  // (B, D)
    }

    // 2. The text, queued behind the read-back of the teacher's scores (one for both views' masks): on a
    // GPU it runs while the host computes the masks.
    std::optional<HostCopy> scores;
    if (cfg.mask == MaskMode::Attentive) scores.emplace(out.attn);
    Tensor text_embed = clip.text.forward(batch.text);  // (B, E), shared by both views

    // 3. Which patches each view keeps.
    if (cfg.mask == MaskMode::Attentive) {
        const Tensor attn = scores->wait();
        out.keep1 = attentive_keep(attn, batch.boxes, 0, mask_cfg).to(batch.view1.device());
        if (cfg.views == 2)
            out.keep2 = attentive_keep(attn, batch.boxes, 1, mask_cfg).to(batch.view1.device());
    } else if (cfg.mask == MaskMode::Random) {
        out.keep1 =
            random_keep(B, N, cfg.keep_ratio, batch.mask_seed, batch.mask_offset).to(batch.view1.device());
        if (cfg.views == 2)
            out.keep2 = random_keep(B, N, cfg.keep_ratio, batch.mask_seed, batch.mask_offset + B * N)
                            .to(batch.view1.device());
    }

    // 4. The online image tower: both views in one pass.
    Tensor images = cfg.views == 2 ? concat({batch.view1, batch.view2}, 0) : batch.view1;  // (V*B, 3, S, S)
    Tensor keep = out.keep1.defined() && cfg.views == 2 ? concat({out.keep1, out.keep2}, 0) : out.keep1;
    VisionOutput online = clip.visual.forward(images, keep);

    // 5. The loss terms.
    out.clip1 = clip_loss(online.embed.narrow(0, 0, B), text_embed, clip.logit_scale, comm);
    Tensor clip_term = out.clip1;
    if (cfg.views == 2) {
        out.clip2 = clip_loss(online.embed.narrow(0, B, B), text_embed, clip.logit_scale, comm);
        clip_term = mul_scalar(add(out.clip1, out.clip2), 0.5);
    }
    out.loss = mul_scalar(clip_term, cfg.clip_weight);
    if (cfg.ssl_losses) {
        Tensor z = ssl.simclr_mlp.forward(online.cls);  // (2B, D): both views go through the BatchNorms
        Tensor z1 = z.narrow(0, 0, B);
        out.simclr = simclr_loss(z1, cfg.simclr_pairs == SimclrPairs::Views ? z.narrow(0, B, B) : z1,
                                 cfg.simclr_tau, comm);
        Tensor pred = ssl.byol_predictor.forward(ssl.byol_projector.forward(online.cls));  // (2B, D)
        out.byol = byol_loss(pred, byol_target);
        out.loss = add(out.loss,
                       add(mul_scalar(out.simclr, cfg.simclr_weight), mul_scalar(out.byol, cfg.byol_weight)));
    }
    return out;
}

}  // namespace aclip
