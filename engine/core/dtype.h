// dtype.h: the element types a tensor can hold, and the devices it can live on.
// f64 exists for CPU gradient checks; bf16 is a storage type (arithmetic happens in f32).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/core/error.h"
#include "engine/math/bf16.h"

namespace aclip {

enum class DType : uint8_t { F32, F64, BF16, I32, I64, U8 };
enum class Device : uint8_t { CPU, CUDA };

inline size_t dtype_size(DType t) {
    switch (t) {
        case DType::F32:
            return 4;
        case DType::F64:
            return 8;
        case DType::BF16:
            return 2;
        case DType::I32:
            return 4;
        case DType::I64:
            return 8;
        case DType::U8:
            return 1;
    }
    return 0;
}

inline const char* dtype_name(DType t) {
    switch (t) {
        case DType::F32:
            return "f32";
        case DType::F64:
            return "f64";
        case DType::BF16:
            return "bf16";
        case DType::I32:
            return "i32";
        case DType::I64:
            return "i64";
        case DType::U8:
            return "u8";
    }
    return "?";
}

inline const char* device_name(Device d) {
    return d == Device::CPU ? "cpu" : "cuda";
}

inline bool is_floating(DType t) {
    return t == DType::F32 || t == DType::F64 || t == DType::BF16;
}
inline bool is_integral(DType t) {
    return !is_floating(t);
}
// f32 with bf16, in either order: the pair autocast meets, which some kernels take as it is.
inline bool f32_with_bf16(DType a, DType b) {
    return (a == DType::F32 && b == DType::BF16) || (a == DType::BF16 && b == DType::F32);
}

// The C++ type behind each dtype, and back.
template <class T>
struct dtype_of;
template <>
struct dtype_of<float> {
    static constexpr DType value = DType::F32;
};
template <>
struct dtype_of<double> {
    static constexpr DType value = DType::F64;
};
template <>
struct dtype_of<bf16> {
    static constexpr DType value = DType::BF16;
};
template <>
struct dtype_of<int32_t> {
    static constexpr DType value = DType::I32;
};
template <>
struct dtype_of<int64_t> {
    static constexpr DType value = DType::I64;
};
template <>
struct dtype_of<uint8_t> {
    static constexpr DType value = DType::U8;
};

// The type arithmetic is done in: bf16 computes in f32, everything else in itself.
template <class T>
struct compute_type {
    using type = T;
};
template <>
struct compute_type<bf16> {
    using type = float;
};
template <class T>
using compute_t = typename compute_type<T>::type;

template <class T>
inline compute_t<T> load(T v) {
    return v;
}
inline float load(bf16 v) {
    return bf16_to_f32(v);
}

template <class T, class C>
inline T store_as(C v) {
    return static_cast<T>(v);
}
template <>
inline bf16 store_as<bf16, float>(float v) {
    return bf16_from_f32(v);
}
template <>
inline bf16 store_as<bf16, double>(double v) {
    return bf16_from_f32(static_cast<float>(v));
}

template <class T>
struct TypeTag {
    using type = T;
};

// Calls fn(TypeTag<T>{}) with T the C++ type of a floating dtype; other dtypes are an error naming op.
template <class F>
decltype(auto) dispatch_float(DType t, const char* op, F&& fn) {
    switch (t) {
        case DType::F32:
            return fn(TypeTag<float>{});
        case DType::F64:
            return fn(TypeTag<double>{});
        case DType::BF16:
            return fn(TypeTag<bf16>{});
        default:
            break;
    }
    AC_FAIL(op, ": dtype ", dtype_name(t), " is not supported; expected f32, f64 or bf16");
}

// Calls fn(TypeTag<T>{}) for any dtype.
template <class F>
decltype(auto) dispatch_any(DType t, F&& fn) {
    switch (t) {
        case DType::F32:
            return fn(TypeTag<float>{});
        case DType::F64:
            return fn(TypeTag<double>{});
        case DType::BF16:
            return fn(TypeTag<bf16>{});
        case DType::I32:
            return fn(TypeTag<int32_t>{});
        case DType::I64:
            return fn(TypeTag<int64_t>{});
        case DType::U8:
            return fn(TypeTag<uint8_t>{});
    }
    AC_FAIL("unknown dtype");
}

}  // namespace aclip
