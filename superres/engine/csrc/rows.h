// Rows of a channels-last feature map as the kernels read and write them, and 16-float vectors (see kernels.cpp).
#pragma once

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cstdint>
#include <cstring>

namespace superres {

// 16 floats in a GCC/Clang vector type: one AVX-512 register, or two AVX2 ones, with -march=native.
typedef float v16 __attribute__((vector_size(64)));

inline v16 load16(const float* p) {
    v16 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

inline void store16(float* p, v16 v) { std::memcpy(p, &v, sizeof v); }

// Rows of a map `height` rows high, channels contiguous per pixel: a window that holds rows
// [first, first + rows), or a ring of `rows` rows in which row r lies at r % rows. Rows outside the
// map are the conv's zero padding, and rows outside a window are not there: row() gives nullptr for both.
template <typename T>
struct Rows {
    T* data = nullptr;
    int64_t row_stride = 0, col_stride = 0;
    int64_t first = 0, rows = 0, height = 0;
    bool ring = false;

    T* row(int64_t r) const {
        if (r < 0 || r >= height || (!ring && (r < first || r >= first + rows))) return nullptr;
        return data + (ring ? r % rows : r - first) * row_stride;
    }
};

// A window of a [rows, width, channels] tensor with channel stride 1, holding map rows from `first`.
template <typename T, typename Storage = T>
Rows<T> window(const torch::Tensor& t, int64_t first, int64_t height) {
    return {reinterpret_cast<T*>(t.data_ptr<Storage>()), t.stride(0), t.stride(1), first, t.size(0), height, false};
}

// f(begin, end) over [0, n): split over torch's threads, or all on the calling thread.
template <typename F>
void for_range(bool parallel, int64_t n, const F& f) {
    if (parallel)
        at::parallel_for(0, n, 1, f);
    else if (n > 0)
        f(0, n);
}

}  // namespace superres
