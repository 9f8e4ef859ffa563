// npy.h: NumPy's .npy format (version 1.0), written so that numpy.load reads embeddings directly: the
// magic "\x93NUMPY", a little-endian header dict ('descr', 'fortran_order', 'shape') padded with spaces
// to a multiple of 64 bytes and ended by a newline, then the C-order data. Written atomically.
#pragma once
#include <string>

#include "engine/core/tensor.h"

namespace aclip {

std::string npy_bytes(const Tensor& t);  // f32, f64, i32, i64 or u8 (bf16 has no NumPy dtype)
void save_npy(const std::string& path, const Tensor& t);

}  // namespace aclip
