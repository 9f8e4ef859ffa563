// npy.cpp: see npy.h.
#include "engine/io/npy.h"

#include "engine/io/files.h"

namespace aclip {

std::string npy_bytes(const Tensor& t_in) {
    Tensor t = t_in.detach().to(Device::CPU).contiguous();
    const char* descr = nullptr;
    switch (t.dtype()) {
        case DType::F32:
            descr = "<f4";
            break;
        case DType::F64:
            descr = "<f8";
            break;
        case DType::I32:
            descr = "<i4";
            break;
        case DType::I64:
            descr = "<i8";
            break;
        case DType::U8:
            descr = "|u1";
            break;
        case DType::BF16:
            AC_FAIL_HINT("cast to f32 first: .to(DType::F32)", "save_npy: NumPy has no bf16 dtype (",
                         t.desc(), ")");
    }
    std::string shape = "(";
    for (int64_t d = 0; d < t.dim(); ++d)
        shape += std::to_string(t.size(d)) + (t.dim() == 1 ? "," : d + 1 < t.dim() ? ", " : "");
    shape += ")";
    std::string header =
        std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
    const size_t preamble = 10;  // magic (6) + version (2) + header length (2)
    header.append((64 - (preamble + header.size() + 1) % 64) % 64, ' ');
    header += '\n';
    std::string out = "\x93NUMPY";
    out += '\x01';
    out += '\x00';
    out += static_cast<char>(header.size() & 0xff);
    out += static_cast<char>(header.size() >> 8);
    out += header;
    out.append(static_cast<const char*>(t.raw_data()),
               static_cast<size_t>(t.numel()) * dtype_size(t.dtype()));
    return out;
}

void save_npy(const std::string& path, const Tensor& t) {
    write_file_atomic(path, npy_bytes(t));
}

}  // namespace aclip
