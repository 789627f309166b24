// Rows of a channels-last feature map as the kernels read and write them, and 16-float vectors (see kernels.cpp).
#pragma once

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

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

// A conv's input channel groups as windows of map rows from `first`, checked: each a [rows, width, lanes·k]
// tensor of `dtype` (`what` names it in the error) with channel stride 1, all as wide as the first, holding
// the map rows [lo - 1, hi + 1) that output rows [lo, hi) read. Their channel counts go to `channels`.
template <typename T, typename Storage>
std::vector<Rows<const T>> input_windows(const char* op, const std::vector<torch::Tensor>& inputs, at::ScalarType dtype,
                                         int64_t lanes, const char* what, int64_t first, int64_t lo, int64_t hi,
                                         int64_t height, std::vector<int64_t>& channels) {
    TORCH_CHECK(!inputs.empty(), op, ": no input");
    const int64_t width = inputs[0].size(1);
    std::vector<Rows<const T>> parts;
    for (const auto& p : inputs) {
        TORCH_CHECK(p.dim() == 3 && p.scalar_type() == dtype && p.stride(2) == 1 && p.size(2) % lanes == 0 &&
                        p.size(1) == width,
                    op, ": inputs must be [rows, width, ", lanes, "k] ", what, " with channel stride 1");
        TORCH_CHECK((lo == 0 || first <= lo - 1) && std::min(hi + 1, height) <= first + p.size(0), op,
                    ": the input rows do not cover the rows the output needs");
        parts.push_back(window<const T, Storage>(p, first, height));
        channels.push_back(p.size(2));
    }
    return parts;
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
