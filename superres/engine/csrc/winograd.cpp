// Winograd F(4x4, 3x3) convolution for float32 on CPU (Lavin & Gray, CVPR 2016); see superres/engine/winograd.py.
//
// conv3x3 computes a 3x3, stride-1 convolution over rows of a channels-last map, one block of
// 4x4 output tiles at a time, so that a block's transformed input and products stay in cache:
//   1. input transform  U[ab][t][k] = (Bᵀ d B)[a][b] of tile t's 6x6 input window, channel k
//   2. 36 products      M[ab] = U[ab] (tiles x K) @ V[ab] (K x N), V = G g Gᵀ from Python
//   3. output transform out = Aᵀ M A + bias (then LeakyReLU or per-channel PReLU if asked), written where
//      the caller says.
// Channels go 16 at a time through GCC/Clang vector types: AVX-512 or 2x AVX2 with -march=native.

#include "rows.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace superres::winograd_detail {

// t = Bᵀ d for 6 values (interpolation points 0, ±1, ±2, ∞)
inline void input_1d(const v16* d, v16* t) {
    t[0] = 4.f * d[0] - 5.f * d[2] + d[4];
    t[1] = -4.f * (d[1] + d[2]) + d[3] + d[4];
    t[2] = 4.f * (d[1] - d[2]) - d[3] + d[4];
    t[3] = 2.f * (d[3] - d[1]) - d[2] + d[4];
    t[4] = 2.f * (d[1] - d[3]) - d[2] + d[4];
    t[5] = 4.f * d[1] - 5.f * d[3] + d[5];
}

// y = Aᵀ m: 6 values to 4 outputs
inline void output_1d(const v16* m, v16* y) {
    const v16 s12 = m[1] + m[2], d12 = m[1] - m[2], s34 = m[3] + m[4], d34 = m[3] - m[4];
    y[0] = m[0] + s12 + s34;
    y[1] = d12 + 2.f * d34;
    y[2] = s12 + 4.f * s34;
    y[3] = d12 + 8.f * d34 + m[5];
}

// R rows of u (row stride K) times v (K x N, row stride N), output columns [n0, n0 + 16 V), into m (row stride N)
template <int R, int V>
inline void product_rows(const float* __restrict__ u, int64_t K, const float* __restrict__ v, int64_t N,
                         float* __restrict__ m, int64_t n0) {
    v16 acc[R][V];
    for (int r = 0; r < R; ++r)
        for (int j = 0; j < V; ++j) acc[r][j] = v16{};
    for (int64_t k = 0; k < K; ++k) {
        v16 vk[V];
        for (int j = 0; j < V; ++j) vk[j] = load16(v + k * N + n0 + 16 * j);
        for (int r = 0; r < R; ++r) {
            const float x = u[r * K + k];
            for (int j = 0; j < V; ++j) acc[r][j] += vk[j] * x;
        }
    }
    for (int r = 0; r < R; ++r)
        for (int j = 0; j < V; ++j) store16(m + r * N + n0 + 16 * j, acc[r][j]);
}

// columns [n0, n0 + 16 V) of all rows: 6 rows at a time (12 accumulators with V = 2)
template <int V>
void product_columns(const float* u, int64_t rows, int64_t K, const float* v, int64_t N, float* m, int64_t n0) {
    int64_t r = 0;
    for (; r + 6 <= rows; r += 6) product_rows<6, V>(u + r * K, K, v, N, m + r * N, n0);
    const float* ur = u + r * K;
    float* mr = m + r * N;
    switch (rows - r) {
        case 5: product_rows<5, V>(ur, K, v, N, mr, n0); break;
        case 4: product_rows<4, V>(ur, K, v, N, mr, n0); break;
        case 3: product_rows<3, V>(ur, K, v, N, mr, n0); break;
        case 2: product_rows<2, V>(ur, K, v, N, mr, n0); break;
        case 1: product_rows<1, V>(ur, K, v, N, mr, n0); break;
        default: break;
    }
}

void product(const float* u, int64_t rows, int64_t K, const float* v, int64_t N, float* m) {
    int64_t n0 = 0;
    for (; n0 + 32 <= N; n0 += 32) product_columns<2>(u, rows, K, v, N, m, n0);
    if (n0 < N) product_columns<1>(u, rows, K, v, N, m, n0);  // N = 32k + 16
}

constexpr int64_t kBlock = 32;  // tiles per block: 36 x 32 x 192 floats of U = 0.9 MB at the widest conv

// Scratch of one thread: kept from call to call (the compact network calls per stripe and layer).
float* scratch(std::vector<float>& buffer, size_t size) {
    if (buffer.size() < size) buffer.resize(size);
    return buffer.data();
}

}  // namespace superres::winograd_detail

namespace superres {

// Output rows [lo, hi) of a 3x3 conv, from its input rows `parts` (channel groups, read as one map of their
// channels in order; rows outside the map are zero), into `out`. Tile (i, j) reads input rows
// lo + 4i - 1 … lo + 4i + 4 and columns 4j - 1 … 4j + 4 and makes output rows lo + 4i … lo + 4i + 3
// and columns 4j … 4j + 3 (those below hi and inside the map). v: [36, K, N] (G g Gᵀ). With `activate`:
// LeakyReLU with `slope`, or PReLU with the per-channel `slopes` where that is not null.
void winograd_rows(const std::vector<Rows<const float>>& parts, const std::vector<int64_t>& channels, int64_t lo,
                   int64_t hi, int64_t width, const float* v, int64_t N, const float* b, bool activate, float slope,
                   const float* slopes, const Rows<float>& out, bool parallel) {
    using namespace winograd_detail;
    int64_t K = 0;
    for (int64_t c : channels) K += c;
    const int64_t tiles_high = (hi - lo + 3) / 4, tiles_wide = (width + 3) / 4;
    const int64_t tiles = tiles_high * tiles_wide, blocks = (tiles + kBlock - 1) / kBlock;

    for_range(parallel, blocks, [&](int64_t first_block, int64_t last_block) {
        static thread_local std::vector<float> u_buffer, m_buffer;
        float* u = scratch(u_buffer, 36 * kBlock * K);
        float* m = scratch(m_buffer, 36 * kBlock * N);
        for (int64_t block = first_block; block < last_block; ++block) {
            const int64_t t0 = block * kBlock, count = std::min(kBlock, tiles - t0);
            // 1. input transform
            for (int64_t t = 0; t < count; ++t) {
                const int64_t ti = (t0 + t) / tiles_wide, tj = (t0 + t) % tiles_wide;
                int64_t channel = 0;
                for (size_t part = 0; part < parts.size(); ++part) {
                    const Rows<const float>& rows = parts[part];
                    const float* window[36];  // nullptr: the zero padding
                    for (int k = 0; k < 6; ++k) {
                        const float* row = rows.row(lo + 4 * ti - 1 + k);
                        for (int l = 0; l < 6; ++l) {
                            const int64_t c = 4 * tj - 1 + l;
                            window[k * 6 + l] = row != nullptr && c >= 0 && c < width ? row + c * rows.col_stride : nullptr;
                        }
                    }
                    for (int64_t c = 0; c < channels[part]; c += 16) {
                        v16 rows_done[6][6];
                        for (int l = 0; l < 6; ++l) {
                            v16 column[6], transformed[6];
                            for (int k = 0; k < 6; ++k) column[k] = window[k * 6 + l] ? load16(window[k * 6 + l] + c) : v16{};
                            input_1d(column, transformed);
                            for (int a = 0; a < 6; ++a) rows_done[a][l] = transformed[a];
                        }
                        for (int a = 0; a < 6; ++a) {
                            v16 transformed[6];
                            input_1d(rows_done[a], transformed);
                            for (int bb = 0; bb < 6; ++bb)
                                store16(u + ((a * 6 + bb) * kBlock + t) * K + channel + c, transformed[bb]);
                        }
                    }
                    channel += channels[part];
                }
            }
            // 2. the 36 products
            for (int ab = 0; ab < 36; ++ab) product(u + ab * kBlock * K, count, K, v + ab * K * N, N, m + ab * kBlock * N);
            // 3. output transform, bias, activation
            for (int64_t t = 0; t < count; ++t) {
                const int64_t ti = (t0 + t) / tiles_wide, tj = (t0 + t) % tiles_wide;
                for (int64_t c = 0; c < N; c += 16) {
                    const v16 bias_c = load16(b + c);
                    const v16 slope_c = slopes != nullptr ? load16(slopes + c) : v16{} + slope;
                    v16 columns_done[4][6];
                    for (int bb = 0; bb < 6; ++bb) {
                        v16 column[6], y[4];
                        for (int a = 0; a < 6; ++a) column[a] = load16(m + ((a * 6 + bb) * kBlock + t) * N + c);
                        output_1d(column, y);
                        for (int i = 0; i < 4; ++i) columns_done[i][bb] = y[i];
                    }
                    for (int i = 0; i < 4; ++i) {
                        const int64_t r = lo + 4 * ti + i;
                        float* row = r < hi ? out.row(r) : nullptr;
                        if (row == nullptr) continue;
                        v16 y[4];
                        output_1d(columns_done[i], y);
                        for (int j = 0; j < 4; ++j) {
                            const int64_t col = 4 * tj + j;
                            if (col >= width) continue;
                            v16 value = y[j] + bias_c;
                            if (activate) value = value < 0.f ? value * slope_c : value;
                            store16(row + col * out.col_stride + c, value);
                        }
                    }
                }
            }
        }
    });
}

}  // namespace superres

// inputs: channel groups of the conv's input rows [first, first + rows) of a map `height` rows high, each
// [rows, width, 16k] float32 with channel stride 1. Writes output rows [lo, hi) to out ([hi - lo, width, N],
// channel stride 1). weight: [36, K, N] (G g Gᵀ). With `activate`: LeakyReLU with `slope`, or PReLU
// with the per-channel `slopes` where that is not empty.
void conv3x3(const std::vector<torch::Tensor>& inputs, int64_t first, int64_t lo, int64_t hi, int64_t height,
             const torch::Tensor& weight, const torch::Tensor& bias, double slope, bool activate,
             const torch::Tensor& slopes, torch::Tensor out) {
    std::vector<int64_t> channels;
    const auto parts = superres::input_windows<float, float>("conv3x3", inputs, at::kFloat, 16, "float32 maps", first, lo,
                                                             hi, height, channels);
    const int64_t width = inputs[0].size(1);
    int64_t K = 0;
    for (int64_t c : channels) K += c;
    const int64_t N = weight.size(2);
    TORCH_CHECK(weight.dim() == 3 && weight.size(0) == 36 && weight.size(1) == K && weight.is_contiguous() &&
                    weight.scalar_type() == at::kFloat && N % 16 == 0,
                "conv3x3: weight must be [36, K, 16n] float32, contiguous");
    TORCH_CHECK(bias.numel() == N && bias.is_contiguous() && bias.scalar_type() == at::kFloat, "conv3x3: bad bias");
    TORCH_CHECK(slopes.numel() == 0 || (slopes.numel() == N && slopes.is_contiguous() && slopes.scalar_type() == at::kFloat),
                "conv3x3: bad slopes");
    TORCH_CHECK(out.dim() == 3 && out.size(0) == hi - lo && out.size(1) == width && out.size(2) == N &&
                    out.stride(2) == 1 && out.scalar_type() == at::kFloat,
                "conv3x3: out must be [hi - lo, width, N] float32 with channel stride 1");
    superres::winograd_rows(parts, channels, lo, hi, width, weight.data_ptr<float>(), N, bias.data_ptr<float>(),
                            activate, static_cast<float>(slope), slopes.numel() ? slopes.data_ptr<float>() : nullptr,
                            superres::window<float>(out, lo, height), true);
}
