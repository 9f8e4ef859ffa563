// resize.cpp: see resize.h. Two separable passes, one output row at a time, so the intermediate row stays
// in the L1 cache. RGB images: the vertical pass reads the uint8 rows the crop needs (contiguous, so it
// vectorises) into one interleaved float row; the horizontal pass reads each output pixel's window of
// that row as 4-float vectors (r, g, b and the next pixel's red, which gets weight but is never stored)
// and writes the three planes. One plane: the same vertical pass; the horizontal pass, with AVX-512,
// takes sixteen outputs at a time, whose inputs lie in a window of 32 or 64 floats held in registers,
// so each tap is a permute and an FMA.
#include "data/resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "engine/core/error.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace aclip {

namespace {

// PIL's bilinear ("triangle") resampling weights for one axis, antialiased when shrinking: output o
// covers [start + o * scale, start + (o + 1) * scale) of the input, and the filter widens by the scale.
// Stored flat: output o reads inputs first[o] .. first[o] + taps - 1 with weights w[o * taps ...]
// (zero-padded), so the inner loops have a fixed length. The weights sum to `gain`.
struct Taps {
    int64_t taps = 0;
    std::vector<int64_t> first;
    std::vector<float> w;
};

Taps resample_taps(double start, double length, int64_t in_size, int64_t out_size, double gain) {
    const double scale = length / static_cast<double>(out_size);
    const double support = std::max(scale, 1.0), inv_support = 1.0 / support;  // the triangle's half-width
    // A window holds the samples whose centres (i + 0.5) lie strictly inside (center - support, center +
    // support), clipped to the image; the widest window sets the tap count (3 for shrinking by up to 1.5,
    // 4 up to 2, 2 when enlarging). A window that is empty (the centre fell between samples at the border)
    // takes the nearest pixel.
    Taps t;
    t.first.resize(static_cast<size_t>(out_size));
    std::vector<int64_t> count(static_cast<size_t>(out_size));
    t.taps = 1;
    auto center_of = [&](int64_t o) { return start + (static_cast<double>(o) + 0.5) * scale; };
    for (int64_t o = 0; o < out_size; ++o) {
        const double center = center_of(o);
        const int64_t lo = std::max<int64_t>(static_cast<int64_t>(std::floor(center - support - 0.5)) + 1, 0);
        const int64_t hi =
            std::min<int64_t>(static_cast<int64_t>(std::ceil(center + support - 0.5)) - 1, in_size - 1);
        const int64_t n = std::max<int64_t>(hi - lo + 1, 0);
        t.first[static_cast<size_t>(o)] = lo;
        count[static_cast<size_t>(o)] = n;
        t.taps = std::max(t.taps, n);
    }
    t.w.assign(static_cast<size_t>(out_size * t.taps), 0.0f);
    std::vector<double> v(static_cast<size_t>(t.taps));
    for (int64_t o = 0; o < out_size; ++o) {
        const double center = center_of(o);
        const int64_t lo = t.first[static_cast<size_t>(o)], n = count[static_cast<size_t>(o)];
        double total = 0;
        for (int64_t k = 0; k < n; ++k)
            total += v[static_cast<size_t>(k)] =
                1.0 - std::abs((static_cast<double>(lo + k) + 0.5 - center) * inv_support);
        float* w = t.w.data() + o * t.taps;
        if (total <= 0) {  // no window, or (rounding at its edge) only zero weights: the nearest pixel
            t.first[static_cast<size_t>(o)] =
                std::clamp<int64_t>(static_cast<int64_t>(center), 0, in_size - 1);
            w[0] = static_cast<float>(gain);
            continue;
        }
        const double norm = gain / total;
        for (int64_t k = 0; k < n; ++k) w[k] = static_cast<float>(v[static_cast<size_t>(k)] * norm);
    }
    return t;
}

using Pixel4 = float __attribute__((vector_size(16)));  // r, g, b and a lane that is never stored

Pixel4 load_pixel4(const float* p) {
    Pixel4 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

void store4(float* p, Pixel4 v) {
    const Pixel4 one = {1, 1, 1, 1};
    v = v > one ? one : v;  // weights are >= 0 and sum to 1: only rounding can overshoot, and only upward
    std::memcpy(p, &v, sizeof v);
}

// One output row of the vertical pass: row[i] = sum over taps of w * input row (first + k)[i], i < span,
// where input row r starts at src + r * stride (the crop's first column of an RGB image or of a plane) and
// rows past `height` are the window's zero-weight padding.
void vertical_row(const uint8_t* src, int64_t stride, int64_t height, const Taps& ty, int64_t y, int64_t span,
                  float* __restrict row) {
    const float* w = ty.w.data() + y * ty.taps;
    const int64_t first = ty.first[static_cast<size_t>(y)];
    const int64_t n = std::min(ty.taps, height - first);
    const uint8_t* __restrict in = src + first * stride;
    for (int64_t i = 0; i < span; ++i) row[i] = w[0] * static_cast<float>(in[i]);
    for (int64_t k = 1; k < n; ++k) {
        if (w[k] == 0.0f) continue;
        in = src + (first + k) * stride;
        const float wk = w[k];
        for (int64_t i = 0; i < span; ++i) row[i] += wk * static_cast<float>(in[i]);
    }
}

// The horizontal pass of one row: out_w pixels into the planes r, g, b from the row's interleaved
// values (whose weights already scale 0..255 to 0..1). Each output pixel is one vector sum over its
// window; four of them are transposed into three plane stores. TAPS is the tap count when known at
// compile time (the loop is then unrolled), else 0 (tx.taps at run time).
template <int TAPS>
void horizontal_row(const float* row, int64_t col_lo, const Taps& tx, int64_t out_w, float* r, float* g,
                    float* b) {
    const int64_t taps = TAPS ? TAPS : tx.taps;
    auto pixel = [&](int64_t x) {
        const float* p = row + (tx.first[static_cast<size_t>(x)] - col_lo) * 3;
        const float* w = tx.w.data() + x * taps;
        Pixel4 acc = {0, 0, 0, 0};
        for (int64_t k = 0; k < taps; ++k) acc += w[k] * load_pixel4(p + 3 * k);
        return acc;
    };
    int64_t x = 0;
    for (; x + 4 <= out_w; x += 4) {
        const Pixel4 a0 = pixel(x), a1 = pixel(x + 1), a2 = pixel(x + 2), a3 = pixel(x + 3);
        const Pixel4 rg01 = __builtin_shufflevector(a0, a1, 0, 4, 1, 5);  // r0 r1 g0 g1
        const Pixel4 rg23 = __builtin_shufflevector(a2, a3, 0, 4, 1, 5);
        const Pixel4 b01 = __builtin_shufflevector(a0, a1, 2, 6, 3, 7);  // b0 b1 . .
        const Pixel4 b23 = __builtin_shufflevector(a2, a3, 2, 6, 3, 7);
        store4(r + x, __builtin_shufflevector(rg01, rg23, 0, 1, 4, 5));
        store4(g + x, __builtin_shufflevector(rg01, rg23, 2, 3, 6, 7));
        store4(b + x, __builtin_shufflevector(b01, b23, 0, 1, 4, 5));
    }
    for (; x < out_w; ++x) {
        const Pixel4 a = pixel(x);
        r[x] = std::min(a[0], 1.0f);
        g[x] = std::min(a[1], 1.0f);
        b[x] = std::min(a[2], 1.0f);
    }
}

// Both passes, one output row at a time, so the intermediate row stays in the L1 cache.
template <int TAPS>
void resize_rows(const Image& img, const Taps& ty, const Taps& tx, int64_t out_h, int64_t out_w, float* out) {
    const int64_t col_lo = tx.first.front();
    const int64_t col_hi = std::min(img.width, tx.first.back() + tx.taps);
    const int64_t span = (col_hi - col_lo) * 3, plane = out_h * out_w;
    // Padded by the widest tap window and one float (zero weights, zero values), so a window never
    // reads past the end.
    std::vector<float> row(static_cast<size_t>(span + tx.taps * 3 + 1), 0.0f);
    for (int64_t y = 0; y < out_h; ++y) {
        vertical_row(img.pixel(0, col_lo), img.width * 3, img.height, ty, y, span, row.data());
        float* r = out + y * out_w;
        horizontal_row<TAPS>(row.data(), col_lo, tx, out_w, r, r + plane, r + 2 * plane);
    }
}

// ---- one plane ----

// The horizontal pass in blocks of up to 16 outputs (the lanes of a 512-bit register): block b reads
// the row from base[b], and its tap k takes lane j from window position idx[(b * taps + k) * 16 + j] with
// weight w[same]. A window of 32 floats (two registers) holds the inputs of 16 outputs when shrinking by
// up to about 1.8, of 9 up to about 3; 64 floats (four) hold 16 outputs' up to about 3.8; beyond that the
// plan is not usable and the pass runs one output at a time.
struct BlockPlan {
    bool usable = false, wide = false;  // wide: blocks need the 64-float window
    int64_t lanes = 16;                 // outputs per block (16 register lanes; fewer keep a window narrow)
    int64_t blocks = 0, taps = 0;
    std::vector<int64_t> base;
    std::vector<int32_t> idx;
    std::vector<float> w;
};

constexpr int64_t kBlock = 16, kWindow = 64;

// Whether every block of `lanes` outputs reads inside a window of `window` floats from its first input.
bool blocks_fit(const Taps& tx, int64_t out_w, int64_t lanes, int64_t window) {
    for (int64_t x = 0; x < out_w; x += lanes) {
        const int64_t last = std::min(x + lanes, out_w) - 1;
        if (tx.first[static_cast<size_t>(last)] - tx.first[static_cast<size_t>(x)] + tx.taps > window)
            return false;
    }
    return true;
}

// Fills p for blocks of `lanes` outputs whose inputs fit `window` floats (blocks_fit).
void fill_blocks(const Taps& tx, int64_t col_lo, int64_t out_w, int64_t lanes, BlockPlan& p) {
    p.lanes = lanes;
    p.taps = tx.taps;
    p.blocks = (out_w + lanes - 1) / lanes;
    p.base.assign(static_cast<size_t>(p.blocks), 0);
    p.idx.assign(static_cast<size_t>(p.blocks * p.taps * kBlock), 0);
    p.w.assign(p.idx.size(), 0.0f);
    for (int64_t b = 0; b < p.blocks; ++b) {
        const int64_t base = tx.first[static_cast<size_t>(b * lanes)] - col_lo;
        p.base[static_cast<size_t>(b)] = base;
        for (int64_t j = 0; j < lanes && b * lanes + j < out_w; ++j) {
            const int64_t x = b * lanes + j;
            const int64_t offset = tx.first[static_cast<size_t>(x)] - col_lo - base;
            for (int64_t k = 0; k < p.taps; ++k) {
                const size_t at = static_cast<size_t>((b * p.taps + k) * kBlock + j);
                p.idx[at] = static_cast<int32_t>(offset + k);
                p.w[at] = tx.w[static_cast<size_t>(x * p.taps + k)];
            }
        }
    }
}

// The cheapest plan: a 32-float window (one permute per tap) with as many outputs per block as fit, down
// to 9; else 16 outputs with the 64-float window (two permutes per tap, as 512-bit permutes cost two
// cycles on some cores); else not usable.
BlockPlan plan_blocks(const Taps& tx, int64_t col_lo, int64_t out_w) {
    BlockPlan p;
    for (int64_t lanes = kBlock; lanes > kBlock / 2; --lanes)
        if (blocks_fit(tx, out_w, lanes, kWindow / 2)) {
            fill_blocks(tx, col_lo, out_w, lanes, p);
            p.usable = true;
            return p;
        }
    if (blocks_fit(tx, out_w, kBlock, kWindow)) {
        fill_blocks(tx, col_lo, out_w, kBlock, p);
        p.usable = p.wide = true;
    }
    return p;
}

#if defined(__AVX512F__)
template <bool WIDE>
void plane_horizontal_blocks(const float* row, const BlockPlan& plan, int64_t out_w, float* out) {
    for (int64_t b = 0; b < plan.blocks; ++b) {
        const float* window = row + plan.base[static_cast<size_t>(b)];
        const __m512 w0 = _mm512_loadu_ps(window), w1 = _mm512_loadu_ps(window + 16);
        const __m512 w2 = WIDE ? _mm512_loadu_ps(window + 32) : w0,
                     w3 = WIDE ? _mm512_loadu_ps(window + 48) : w1;
        const int32_t* idx = plan.idx.data() + b * plan.taps * kBlock;
        const float* w = plan.w.data() + b * plan.taps * kBlock;
        __m512 even = _mm512_setzero_ps(), odd = _mm512_setzero_ps();  // two sums: shorter FMA chains
        for (int64_t k = 0; k < plan.taps; ++k) {
            const __m512i pick = _mm512_loadu_si512(idx + k * kBlock);
            __m512 v = _mm512_permutex2var_ps(w0, pick, w1);  // positions 0..31 (the low five bits)
            if (WIDE)                                         // positions 32..63 from the upper pair
                v = _mm512_mask_blend_ps(_mm512_test_epi32_mask(pick, _mm512_set1_epi32(32)), v,
                                         _mm512_permutex2var_ps(w2, pick, w3));
            if (k % 2)
                odd = _mm512_fmadd_ps(_mm512_loadu_ps(w + k * kBlock), v, odd);
            else
                even = _mm512_fmadd_ps(_mm512_loadu_ps(w + k * kBlock), v, even);
        }
        const int64_t n = std::min(plan.lanes, out_w - b * plan.lanes);
        _mm512_mask_storeu_ps(out + b * plan.lanes, static_cast<__mmask16>((1u << n) - 1), even + odd);
    }
}
#endif

// row is padded by kWindow zeros, so every window and every tap reads inside it.
void plane_horizontal_row(const float* row, int64_t col_lo, const Taps& tx, const BlockPlan& plan,
                          int64_t out_w, float* out) {
#if defined(__AVX512F__)
    if (plan.usable && plan.wide) return plane_horizontal_blocks<true>(row, plan, out_w, out);
    if (plan.usable) return plane_horizontal_blocks<false>(row, plan, out_w, out);
#endif
    for (int64_t x = 0; x < out_w; ++x) {
        const float* p = row + (tx.first[static_cast<size_t>(x)] - col_lo);
        const float* w = tx.w.data() + x * tx.taps;
        float acc = 0;
        for (int64_t k = 0; k < tx.taps; ++k) acc += w[k] * p[k];
        out[x] = acc;
    }
}

}  // namespace

void resize_planes(const std::vector<const Plane*>& planes, double top, double left, double height,
                   double width, int64_t out_h, int64_t out_w, float* out) {
    AC_CHECK(height > 0 && width > 0 && out_h > 0 && out_w > 0, "resize_planes: empty crop ", height, "x",
             width, " or output ", out_h, "x", out_w);
    const Plane& first = *planes.front();
    const Taps ty = resample_taps(top, height, first.height, out_h, 1.0),
               tx = resample_taps(left, width, first.width, out_w, 1.0);
    const int64_t col_lo = tx.first.front();
    const int64_t cols = std::min(first.width, tx.first.back() + tx.taps) - col_lo;
    const BlockPlan plan = plan_blocks(tx, col_lo, out_w);
    // Padded by a window of zeros: a block's window or a window's zero-weight taps may reach past the end.
    std::vector<float> row(static_cast<size_t>(cols + tx.taps + kWindow), 0.0f);
    for (const Plane* p : planes) {
        AC_CHECK(p->width == first.width && p->height == first.height, "resize_planes: planes of ", p->width,
                 "x", p->height, " and ", first.width, "x", first.height);
        for (int64_t y = 0; y < out_h; ++y) {
            vertical_row(p->row(0) + col_lo, p->stride, p->height, ty, y, cols, row.data());
            plane_horizontal_row(row.data(), col_lo, tx, plan, out_w, out + y * out_w);
        }
        out += out_h * out_w;
    }
}

std::vector<float> crop_resize(const Image& img, double top, double left, double height, double width,
                               int64_t out_h, int64_t out_w) {
    AC_CHECK(height > 0 && width > 0 && out_h > 0 && out_w > 0, "crop_resize: empty crop ", height, "x",
             width, " or output ", out_h, "x", out_w);
    Taps ty = resample_taps(top, height, img.height, out_h, 1.0),
         tx = resample_taps(left, width, img.width, out_w, 1.0 / 255.0);
    std::vector<float> out(static_cast<size_t>(3 * out_h * out_w));
    // The horizontal loop unrolled for the common tap counts: enlarging (2), shrinking by up to 1.5 (3),
    // 2 (4), 2.5 (5); others run with the count read at run time.
    using Rows = void (*)(const Image&, const Taps&, const Taps&, int64_t, int64_t, float*);
    constexpr Rows kByTaps[] = {resize_rows<0>, resize_rows<0>, resize_rows<2>,
                                resize_rows<3>, resize_rows<4>, resize_rows<5>};
    const Rows rows = tx.taps < 6 ? kByTaps[tx.taps] : resize_rows<0>;
    rows(img, ty, tx, out_h, out_w, out.data());
    return out;
}

}  // namespace aclip
