// Winograd F(4x4, 3x3) convolution for float32 on CPU (Lavin & Gray, CVPR 2016); see superres/winograd.py.
//
// conv3x3 computes a 3x3, stride-1 convolution over rows of a channels-last map, one block of
// 4x4 output tiles at a time, so that a block's transformed input and products stay in cache:
//   1. input transform  U[ab][t][k] = (Bᵀ d B)[a][b] of tile t's 6x6 input window, channel k
//   2. 36 products      M[ab] = U[ab] (tiles x K) @ V[ab] (K x N), V = G g Gᵀ from Python
//   3. output transform out = Aᵀ M A + bias (then LeakyReLU if asked), written where the caller says.
// Channels go 16 at a time through GCC/Clang vector types: AVX-512 or 2x AVX2 with -march=native.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace {

typedef float v16 __attribute__((vector_size(64)));

inline v16 load(const float* p) {
    v16 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline void store(float* p, v16 v) { std::memcpy(p, &v, sizeof v); }

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

// R rows of u (row stride K) times v (K x N, row stride N), output columns [n0, n0 + 32), into m (row stride N)
template <int R>
inline void product_rows(const float* __restrict__ u, int64_t K, const float* __restrict__ v, int64_t N,
                         float* __restrict__ m, int64_t n0) {
    v16 acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = v16{};
    for (int64_t k = 0; k < K; ++k) {
        const v16 v0 = load(v + k * N + n0), v1 = load(v + k * N + n0 + 16);
        for (int r = 0; r < R; ++r) {
            const float x = u[r * K + k];
            acc[r][0] += v0 * x;
            acc[r][1] += v1 * x;
        }
    }
    for (int r = 0; r < R; ++r) {
        store(m + r * N + n0, acc[r][0]);
        store(m + r * N + n0 + 16, acc[r][1]);
    }
}

void product(const float* u, int64_t rows, int64_t K, const float* v, int64_t N, float* m) {
    for (int64_t n0 = 0; n0 < N; n0 += 32) {
        int64_t r = 0;
        for (; r + 6 <= rows; r += 6) product_rows<6>(u + r * K, K, v, N, m + r * N, n0);
        const float* ur = u + r * K;
        float* mr = m + r * N;
        switch (rows - r) {
            case 5: product_rows<5>(ur, K, v, N, mr, n0); break;
            case 4: product_rows<4>(ur, K, v, N, mr, n0); break;
            case 3: product_rows<3>(ur, K, v, N, mr, n0); break;
            case 2: product_rows<2>(ur, K, v, N, mr, n0); break;
            case 1: product_rows<1>(ur, K, v, N, mr, n0); break;
            default: break;
        }
    }
}

struct Part {
    const float* data;
    int64_t channels, row_stride, col_stride;
};

constexpr int64_t kBlock = 32;  // tiles per block: 36 x 32 x 192 floats of U = 0.9 MB at the widest conv

}  // namespace

// inputs: [rows, width, C_k] float32 maps (channel stride 1), read as one map of their channels in
// order, zero outside (pad_top zero rows above it: the conv's padding at the top of the whole map).
// Tile (i, j) reads rows 4i - pad_top … 4i - pad_top + 5 and columns 4j - 1 … 4j + 4 of it and makes
// output rows 4i … 4i + 3 (each centred one row below the window's first) and columns 4j … 4j + 3.
// weight: [36, K, N] (G g Gᵀ). Output row 4i + r is written to out row 4i + r - start; rows and
// columns outside out are not written.
void conv3x3(const std::vector<torch::Tensor>& inputs, int64_t pad_top, int64_t tiles_high, int64_t tiles_wide,
             const torch::Tensor& weight, const torch::Tensor& bias, torch::Tensor out, int64_t start, double slope,
             bool activate) {
    TORCH_CHECK(!inputs.empty(), "conv3x3: no input");
    const int64_t rows = inputs[0].size(0), width = inputs[0].size(1);
    std::vector<Part> parts;
    int64_t K = 0;
    for (const auto& p : inputs) {
        TORCH_CHECK(p.dim() == 3 && p.scalar_type() == at::kFloat && p.stride(2) == 1 && p.size(2) % 16 == 0 &&
                        p.size(0) == rows && p.size(1) == width,
                    "conv3x3: inputs must be [rows, width, 16k] float32 maps with channel stride 1");
        parts.push_back({p.data_ptr<float>(), p.size(2), p.stride(0), p.stride(1)});
        K += p.size(2);
    }
    const int64_t N = weight.size(2);
    TORCH_CHECK(weight.dim() == 3 && weight.size(0) == 36 && weight.size(1) == K && weight.is_contiguous() &&
                    weight.scalar_type() == at::kFloat && N % 32 == 0,
                "conv3x3: weight must be [36, K, 32n] float32, contiguous");
    TORCH_CHECK(bias.numel() == N && bias.is_contiguous() && bias.scalar_type() == at::kFloat, "conv3x3: bad bias");
    TORCH_CHECK(out.dim() == 3 && out.size(2) == N && out.stride(2) == 1 && out.scalar_type() == at::kFloat,
                "conv3x3: out must be [rows, width, N] float32 with channel stride 1");
    const int64_t out_rows = out.size(0), out_width = out.size(1), out_row_stride = out.stride(0),
                  out_col_stride = out.stride(1);
    const float* v = weight.data_ptr<float>();
    const float* b = bias.data_ptr<float>();
    float* o = out.data_ptr<float>();
    const float negative_slope = static_cast<float>(slope);
    const int64_t tiles = tiles_high * tiles_wide, blocks = (tiles + kBlock - 1) / kBlock;

    at::parallel_for(0, blocks, 1, [&](int64_t first_block, int64_t last_block) {
        std::vector<float> u_buffer(36 * kBlock * K), m_buffer(36 * kBlock * N);
        float* u = u_buffer.data();
        float* m = m_buffer.data();
        for (int64_t block = first_block; block < last_block; ++block) {
            const int64_t t0 = block * kBlock, count = std::min(kBlock, tiles - t0);
            // 1. input transform
            for (int64_t t = 0; t < count; ++t) {
                const int64_t ti = (t0 + t) / tiles_wide, tj = (t0 + t) % tiles_wide;
                int64_t channel = 0;
                for (const Part& part : parts) {
                    const float* window[36];  // nullptr: the zero padding
                    for (int k = 0; k < 6; ++k) {
                        const int64_t r = 4 * ti - pad_top + k;
                        for (int l = 0; l < 6; ++l) {
                            const int64_t c = 4 * tj - 1 + l;
                            const bool inside = r >= 0 && r < rows && c >= 0 && c < width;
                            window[k * 6 + l] = inside ? part.data + r * part.row_stride + c * part.col_stride : nullptr;
                        }
                    }
                    for (int64_t c = 0; c < part.channels; c += 16) {
                        v16 rows_done[6][6];
                        for (int l = 0; l < 6; ++l) {
                            v16 column[6], transformed[6];
                            for (int k = 0; k < 6; ++k) column[k] = window[k * 6 + l] ? load(window[k * 6 + l] + c) : v16{};
                            input_1d(column, transformed);
                            for (int a = 0; a < 6; ++a) rows_done[a][l] = transformed[a];
                        }
                        for (int a = 0; a < 6; ++a) {
                            v16 transformed[6];
                            input_1d(rows_done[a], transformed);
                            for (int bb = 0; bb < 6; ++bb)
                                store(u + ((a * 6 + bb) * kBlock + t) * K + channel + c, transformed[bb]);
                        }
                    }
                    channel += part.channels;
                }
            }
            // 2. the 36 products
            for (int ab = 0; ab < 36; ++ab) product(u + ab * kBlock * K, count, K, v + ab * K * N, N, m + ab * kBlock * N);
            // 3. output transform, bias, activation
            for (int64_t t = 0; t < count; ++t) {
                const int64_t ti = (t0 + t) / tiles_wide, tj = (t0 + t) % tiles_wide;
                for (int64_t c = 0; c < N; c += 16) {
                    const v16 bias_c = load(b + c);
                    v16 columns_done[4][6];
                    for (int bb = 0; bb < 6; ++bb) {
                        v16 column[6], y[4];
                        for (int a = 0; a < 6; ++a) column[a] = load(m + ((a * 6 + bb) * kBlock + t) * N + c);
                        output_1d(column, y);
                        for (int i = 0; i < 4; ++i) columns_done[i][bb] = y[i];
                    }
                    for (int i = 0; i < 4; ++i) {
                        const int64_t r = 4 * ti + i - start;
                        if (r < 0 || r >= out_rows) continue;
                        v16 y[4];
                        output_1d(columns_done[i], y);
                        for (int j = 0; j < 4; ++j) {
                            const int64_t col = 4 * tj + j;
                            if (col >= out_width) continue;
                            v16 value = y[j] + bias_c;
                            if (activate) value = value < 0.f ? value * negative_slope : value;
                            store(o + r * out_row_stride + col * out_col_stride + c, value);
                        }
                    }
                }
            }
        }
    });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
    module.def("conv3x3", &conv3x3, "Winograd F(4x4, 3x3) convolution of channels-last float32 rows");
}
