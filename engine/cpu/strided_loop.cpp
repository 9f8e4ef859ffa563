// strided_loop.cpp: see strided_loop.h.
#include "engine/cpu/strided_loop.h"

namespace aclip {

Strides broadcast_strides(const Shape& shape, const Strides& strides, const Shape& out_shape) {
    Strides out(out_shape.size(), 0);
    size_t lead = out_shape.size() - shape.size();
    for (size_t i = 0; i < shape.size(); ++i)
        out[lead + i] = (shape[i] == 1 && out_shape[lead + i] != 1) ? 0 : strides[i];
    return out;
}

}  // namespace aclip
