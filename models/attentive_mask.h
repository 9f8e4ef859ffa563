// attentive_mask.h: A-CLIP's choice of the patches each view keeps (aclip-method.md section 4).
// The EMA tower's CLS->patch attention on the zoom-out crop, a (G, G) map, is resized bilinearly to the
// EMA box in pixels, the view's box is cut out of it (zero outside the EMA box), resized back to (G, G),
// averaged over block x block squares, and the top squares are kept: floor(squares * keep_ratio) + 1 of
// them (25 of 49 at 224/16 with blocks of 2 and ratio 0.5, as the official code). The maps are computed on
// the CPU from one read-back of the scores, whatever their device: each is a few hundred values, and on a
// GPU the per-sample boxes cost five small launches a sample (about 3,000 a ViT-B/16 step at batch 256).
#pragma once
#include <cstdint>

#include "engine/core/tensor.h"

namespace aclip {

struct MaskConfig {
    int64_t grid = 14;        // patches per side
    int64_t block = 2;        // squares of block x block patches are kept or dropped together
    double keep_ratio = 0.5;  // of the squares (plus one, as the official code)
};

int64_t kept_blocks(const MaskConfig& cfg);  // how many squares a view keeps
int64_t kept_patches(const MaskConfig& cfg);

// score (B, G*G): attention of the EMA tower; boxes (B, 3, 4) i64 (top, left, height, width) of view 1,
// view 2 and the EMA crop in original-image pixels; view is 0 or 1. Returns the kept patch indices of
// that view, (B, K) i64, ascending.
Tensor attentive_keep(const Tensor& score, const Tensor& boxes, int view, const MaskConfig& cfg);

// The view's score map before selection, (G, G), for one sample (exposed for tests and plots).
Tensor view_score_map(const Tensor& score_row, const int64_t* ema_box, const int64_t* view_box, int64_t grid);

// FLIP-style random mask: for each of B samples keep floor(N * keep_ratio) patches drawn uniformly
// (by sorting Philox noise), ascending. Seeded by (seed, offset).
Tensor random_keep(int64_t B, int64_t num_patches, double keep_ratio, uint64_t seed, uint64_t offset);

}  // namespace aclip
