// One residual dense block of RRDBNet (ESRGAN) in bf16 on AMX tiles; see superres/engine/blockwise.py.
//
//   x1 = lrelu(conv1(x)), x2 = lrelu(conv2([x, x1])), …, x5 = conv5([x, x1, x2, x3, x4])
//   out = β · x5 + x;   target = out, or with `residual` target += β · out (the RRDB's own skip)
//
// over a whole map, in one band of rows per thread: each thread computes its band's rows of the block
// alone, with up to 4 rows of context beyond its band's cut edges (conv j needs 5 - j), so threads meet
// only when the block is done. Within a band the five convs run in lagged stripes as the compact
// network's layers do (compact.cpp): conv j computes the rows conv j - 1 has made readable, at most
// `stripe` at a time, and each growth output x1 … x4 lives in a ring of a few rows. The convs read the
// block input and the growth rings where they lie (no concatenation); the residual sums are in fp32
// with one rounding to bf16 at the end.
//
// (kernels.cpp includes this file after amx.cpp, whose row functions it calls)

#include "rows.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace superres::dense_detail {

struct Block {
    Rows<const uint16_t> x;  // the block input: the whole map
    Rows<uint16_t> target;   // the block output: the whole map
    int64_t height, width, features, growth;
    const uint16_t* weights[5];
    const float* biases[5];
    std::vector<float> slopes;  // LeakyReLU's slope for each growth channel
    float beta;
    bool residual;
};

#ifdef SUPERRES_AMX
// target rows [lo, hi) from conv5's rows (fp32, bias added): out = β · x5 + x; target = out or += β · out
void residual_rows(const Block& block, const Rows<float>& x5, int64_t lo, int64_t hi) {
    const __m512 beta = _mm512_set1_ps(block.beta);
    for (int64_t r = lo; r < hi; ++r) {
        const float* conv = x5.row(r);
        const uint16_t* input = block.x.row(r);
        uint16_t* target = block.target.row(r);
        for (int64_t c = 0; c < block.width; ++c) {
            for (int64_t f = 0; f < block.features; f += 16) {
                auto bf16_to_ps = [](const uint16_t* p) {
                    const __m256i half = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
                    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16));
                };
                const int64_t at = c * block.x.col_stride + f;
                __m512 out = _mm512_fmadd_ps(beta, _mm512_loadu_ps(conv + c * x5.col_stride + f), bf16_to_ps(input + at));
                uint16_t* t = target + c * block.target.col_stride + f;
                if (block.residual) out = _mm512_fmadd_ps(beta, out, bf16_to_ps(t));
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(t), (__m256i)_mm512_cvtneps_pbh(out));
            }
        }
    }
}

// rows [a, b) of the block, on the calling thread (or, with `parallel`, each conv over all threads)
void run_band(const Block& block, int64_t a, int64_t b, int64_t stripe, bool parallel) {
    const int64_t H = block.height, W = block.width, G = block.growth, F = block.features;
    const int64_t ring_rows = stripe + 6;  // conv j reads growth k up to j - k rows behind its newest
    std::vector<std::vector<uint16_t>> rings(4, std::vector<uint16_t>(ring_rows * W * G));
    std::vector<Rows<uint16_t>> growth;
    std::vector<Rows<const uint16_t>> parts{block.x};  // conv j reads the first j
    std::vector<int64_t> channels{F};
    for (auto& ring : rings) {
        growth.push_back({ring.data(), W * G, G, 0, ring_rows, H, true});
        parts.push_back({ring.data(), W * G, G, 0, ring_rows, H, true});
        channels.push_back(G);
    }
    std::vector<float> x5(stripe * W * F);
    int64_t done[6], end[6];
    for (int j = 1; j <= 5; ++j) {
        done[j] = std::max<int64_t>(0, a - (5 - j));
        end[j] = std::min<int64_t>(H, b + (5 - j));
    }
    if (!parallel) amx_configure();
    while (done[5] < end[5]) {
        for (int j = 1; j <= 5; ++j) {
            const int64_t readable = j == 1 ? end[1] : (done[j - 1] == H ? H : done[j - 1] - 1);
            const int64_t lo = done[j], hi = std::min({end[j], readable, lo + stripe});
            if (hi <= lo) continue;
            const std::vector<Rows<const uint16_t>> inputs(parts.begin(), parts.begin() + j);
            const std::vector<int64_t> sizes(channels.begin(), channels.begin() + j);
            const auto chunks = amx_chunks(inputs, sizes);
            if (j < 5) {
                amx_rows(chunks, lo, hi, W, block.weights[j - 1], G / 16, block.biases[j - 1], block.slopes.data(),
                         growth[j - 1], parallel, !parallel);
            } else {
                const Rows<float> rows{x5.data(), W * F, F, lo, hi - lo, H, false};
                amx_rows(chunks, lo, hi, W, block.weights[4], F / 16, block.biases[4], static_cast<const float*>(nullptr),
                         rows, parallel, !parallel);
                residual_rows(block, rows, lo, hi);
            }
            done[j] = hi;
        }
    }
    if (!parallel) amx_release();
}
#endif

}  // namespace superres::dense_detail

// x, target: [H, W, F] bf16 maps (channel stride 1, target not x); weights: the five convs packed by
// amx.py's pack_weight (conv j reads F + (j - 1) G channels; conv1 … conv4 make G, conv5 F); biases fp32.
void dense_block_amx(const torch::Tensor& x, torch::Tensor target, const std::vector<torch::Tensor>& weights,
                     const std::vector<torch::Tensor>& biases, double slope, double beta, bool residual, int64_t stripe,
                     int64_t bands) {
#ifdef SUPERRES_AMX
    using namespace superres::dense_detail;
    TORCH_CHECK(superres::amx_ready(), "dense_block_amx: this CPU or kernel build has no AMX tiles");
    TORCH_CHECK(x.dim() == 3 && x.scalar_type() == at::kBFloat16 && x.stride(2) == 1 && target.sizes() == x.sizes() &&
                    target.scalar_type() == at::kBFloat16 && target.stride(2) == 1 && target.data_ptr() != x.data_ptr(),
                "dense_block_amx: x and target must be distinct [H, W, F] bfloat16 maps with channel stride 1");
    TORCH_CHECK(weights.size() == 5 && biases.size() == 5, "dense_block_amx: five convs");
    const int64_t H = x.size(0), W = x.size(1), F = x.size(2), G = biases[0].numel();
    TORCH_CHECK(F % 32 == 0 && G % 32 == 0 && biases[4].numel() == F, "dense_block_amx: channels must be multiples of 32");
    Block block{superres::window<const uint16_t, at::BFloat16>(x, 0, H),
                superres::window<uint16_t, at::BFloat16>(target, 0, H), H, W, F, G, {}, {},
                std::vector<float>(G, static_cast<float>(slope)), static_cast<float>(beta), residual};
    for (int j = 0; j < 5; ++j) {
        const int64_t K = F + j * G, N = j < 4 ? G : F;
        TORCH_CHECK(weights[j].dim() == 5 && weights[j].size(1) * 32 == K && weights[j].size(2) * 16 == N &&
                        weights[j].is_contiguous() && weights[j].scalar_type() == at::kBFloat16,
                    "dense_block_amx: weight ", j + 1, " must be packed for ", K, " inputs and ", N, " outputs");
        TORCH_CHECK(biases[j].numel() == N && biases[j].is_contiguous() && biases[j].scalar_type() == at::kFloat,
                    "dense_block_amx: bad bias");
        block.weights[j] = reinterpret_cast<const uint16_t*>(weights[j].data_ptr<at::BFloat16>());
        block.biases[j] = biases[j].data_ptr<float>();
    }
    TORCH_CHECK(stripe >= 1 && bands >= 1, "dense_block_amx: stripe and bands must be positive");
    if (bands == 1) {
        run_band(block, 0, H, stripe, true);
        return;
    }
    at::parallel_for(0, bands, 1, [&](int64_t first, int64_t last) {
        for (int64_t band = first; band < last; ++band) run_band(block, H * band / bands, H * (band + 1) / bands, stripe, false);
    });
#else
    TORCH_CHECK(false, "dense_block_amx: this kernel was built without AMX");
#endif
}
