// SRVGGNetCompact on the CPU, all layers in lagged stripes of rows; see superres/engine/compact.py.
//
// The image's rows are cut into one band per thread; each thread runs its band alone, with no barrier
// to wait at, reading 18 rows of context (the network's receptive field) beyond its band's cut edges.
// Within a band, layer j keeps its output rows in a ring of a few rows, and each step computes the
// rows of layer j that layer j - 1 has made readable (all but its last), at most `stripe` at a time:
//   layer 0     3x3 conv of the image (3 channels, fp32, direct) + PReLU
//   layer 1…L-2 64 → 64 conv + PReLU by AMX (bf16 rings) or Winograd (fp32 rings)
//   layer L-1   64 → 3·s² conv (no activation, fp32), then pixel shuffle + the input upsampled (nearest)

#include "rows.h"

#include <algorithm>
#include <cstring>
#include <vector>

#ifdef __AVX512BF16__
#include <immintrin.h>
#endif

namespace superres {

// (kernels.cpp includes this file after amx.cpp and winograd.cpp, whose row functions it calls)

namespace compact_detail {

using superres::store16;  // the fp32 store, beside the bf16 one below

// to bf16, rounding to nearest even (as the AMX kernel's conversion does)
inline void store16(uint16_t* p, v16 v) {
#ifdef __AVX512BF16__
    __m512 values;
    std::memcpy(&values, &v, sizeof v);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), (__m256i)_mm512_cvtneps_pbh(values));
#else
    for (int i = 0; i < 16; ++i) {
        uint32_t bits;
        std::memcpy(&bits, &v[i], sizeof bits);
        p[i] = static_cast<uint16_t>((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
    }
#endif
}

struct Network {
    const float* image;  // [H, W, C] fp32
    int64_t image_row_stride, image_col_stride, channels, height, width;
    const float* first_weight;  // [9 · C, F]: tap-major, then input channel
    const float* first_bias;
    const float* first_slopes;
    int64_t features;  // F
    std::vector<const void*> weights;  // layers 1 … L-1: packed for the kernel
    std::vector<const float*> biases, slopes;  // slopes: null for the last layer
    std::vector<int64_t> outputs;  // output channels (padded) of layers 1 … L-1
    bool amx;
    float* out;  // [sH, sW, C] fp32
    int64_t out_row_stride, out_col_stride, scale;
};

// layer 0 rows [lo, hi): direct conv of the image + PReLU, into a ring (fp32 or bf16)
template <typename T>
void first_layer(const Network& net, int64_t lo, int64_t hi, const Rows<T>& ring) {
    const int64_t F = net.features, C = net.channels;
    std::vector<v16> acc(F / 16);
    for (int64_t r = lo; r < hi; ++r) {
        T* row = ring.row(r);
        for (int64_t col = 0; col < net.width; ++col) {
            for (int64_t f = 0; f < F / 16; ++f) acc[f] = load16(net.first_bias + 16 * f);
            for (int dy = 0; dy < 3; ++dy) {
                const int64_t y = r + dy - 1;
                if (y < 0 || y >= net.height) continue;
                for (int dx = 0; dx < 3; ++dx) {
                    const int64_t x = col + dx - 1;
                    if (x < 0 || x >= net.width) continue;
                    const float* pixel = net.image + y * net.image_row_stride + x * net.image_col_stride;
                    const float* w = net.first_weight + (dy * 3 + dx) * C * F;
                    for (int64_t c = 0; c < C; ++c)
                        for (int64_t f = 0; f < F / 16; ++f) acc[f] += load16(w + c * F + 16 * f) * pixel[c];
                }
            }
            T* o = row + col * ring.col_stride;
            for (int64_t f = 0; f < F / 16; ++f) {
                v16 value = acc[f];
                value = value < 0.f ? value * load16(net.first_slopes + 16 * f) : value;
                store16(o + 16 * f, value);
            }
        }
    }
}

// the tail for rows [lo, hi): out[s·r + i, s·c + j, ch] = conv[r, c, ch·s² + i·s + j] + image[r, c, ch]
void shuffle_add(const Network& net, const Rows<float>& conv, int64_t lo, int64_t hi) {
    const int64_t s = net.scale, C = net.channels;
    for (int64_t r = lo; r < hi; ++r) {
        const float* row = conv.row(r);
        const float* image = net.image + r * net.image_row_stride;
        for (int64_t i = 0; i < s; ++i) {
            float* out = net.out + (s * r + i) * net.out_row_stride;
            for (int64_t col = 0; col < net.width; ++col) {
                const float* values = row + col * conv.col_stride + i * s;
                const float* pixel = image + col * net.image_col_stride;
                for (int64_t j = 0; j < s; ++j) {
                    float* o = out + (s * col + j) * net.out_col_stride;
                    for (int64_t ch = 0; ch < C; ++ch) o[ch] = values[ch * s * s + j] + pixel[ch];
                }
            }
        }
    }
}

// One band of output rows [a, b), on the calling thread (or, with `parallel`, each layer over all threads).
template <typename T>
void run_band(const Network& net, int64_t a, int64_t b, int64_t stripe, bool parallel) {
    const int64_t L = static_cast<int64_t>(net.weights.size()) + 1, H = net.height, W = net.width;
    const int64_t ring_rows = stripe + 4;
    // rings of layers 0 … L-2 (F channels each, T), and the last layer's rows (fp32)
    std::vector<std::vector<T>> rings(L - 1);
    std::vector<Rows<T>> maps(L - 1);
    for (int64_t j = 0; j + 1 < L; ++j) {
        const int64_t channels = j == 0 ? net.features : net.outputs[j - 1];
        rings[j].resize(ring_rows * W * channels);
        maps[j] = {rings[j].data(), W * channels, channels, 0, ring_rows, H, true};
    }
    std::vector<float> last(stripe * W * net.outputs.back());
    // the rows each layer must make: its band, widened by the rows later layers read beyond cut edges
    std::vector<int64_t> done(L), end(L);
    for (int64_t j = 0; j < L; ++j) {
        done[j] = std::max<int64_t>(0, a - (L - 1 - j));
        end[j] = std::min<int64_t>(H, b + (L - 1 - j));
    }
    if (net.amx && !parallel) amx_configure();
    while (done[L - 1] < end[L - 1]) {
        for (int64_t j = 0; j < L; ++j) {
            // rows whose three input rows are all made (the map's last row also has its zero row below)
            const int64_t readable = j == 0 ? end[0] : (done[j - 1] == H ? H : done[j - 1] - 1);
            const int64_t lo = done[j], hi = std::min({end[j], readable, lo + stripe});
            if (hi <= lo) continue;
            if (j == 0) {
                first_layer(net, lo, hi, maps[0]);
            } else {
                const Rows<float> last_rows{last.data(), W * net.outputs.back(), net.outputs.back(), lo, hi - lo, H, false};
                const int64_t N = net.outputs[j - 1];
                const float* slopes = net.slopes[j - 1];
                if constexpr (sizeof(T) == 2) {
                    const std::vector<Rows<const uint16_t>> parts{
                        {reinterpret_cast<const uint16_t*>(maps[j - 1].data), maps[j - 1].row_stride,
                         maps[j - 1].col_stride, 0, ring_rows, H, true}};
                    const auto chunks = amx_chunks(parts, {maps[j - 1].col_stride});
                    const auto* w = static_cast<const uint16_t*>(net.weights[j - 1]);
                    if (j + 1 < L)
                        amx_rows(chunks, lo, hi, W, w, N / 16, net.biases[j - 1], slopes, maps[j], parallel, !parallel);
                    else
                        amx_rows(chunks, lo, hi, W, w, N / 16, net.biases[j - 1], slopes, last_rows, parallel, !parallel);
                } else {
                    const std::vector<Rows<const float>> parts{
                        {maps[j - 1].data, maps[j - 1].row_stride, maps[j - 1].col_stride, 0, ring_rows, H, true}};
                    const auto* w = static_cast<const float*>(net.weights[j - 1]);
                    const Rows<float>& out = j + 1 < L ? maps[j] : last_rows;
                    winograd_rows(parts, {maps[j - 1].col_stride}, lo, hi, W, w, N, net.biases[j - 1],
                                  slopes != nullptr, 0.f, slopes, out, parallel);
                }
                if (j + 1 == L) shuffle_add(net, last_rows, lo, hi);
            }
            done[j] = hi;
        }
    }
    if (net.amx && !parallel) amx_release();
}

}  // namespace compact_detail
}  // namespace superres

// SRVGGNetCompact's forward pass (see compact.py): image [H, W, C] fp32 (channel stride 1) → out
// [sH, sW, C] fp32. weights, biases, slopes: layers 1 … L-1 (slopes empty for the last); weights packed
// for AMX (bf16, `amx`) or transformed for Winograd (fp32). `bands` bands of rows, one per thread; with
// one band, each layer runs over all threads instead.
void compact_forward(const torch::Tensor& image, const torch::Tensor& first_weight, const torch::Tensor& first_bias,
                     const torch::Tensor& first_slopes, const std::vector<torch::Tensor>& weights,
                     const std::vector<torch::Tensor>& biases, const std::vector<torch::Tensor>& slopes, bool amx,
                     torch::Tensor out, int64_t scale, int64_t stripe, int64_t bands) {
    using namespace superres::compact_detail;
    TORCH_CHECK(image.dim() == 3 && image.scalar_type() == at::kFloat && image.stride(2) == 1,
                "compact_forward: image must be [H, W, C] float32 with channel stride 1");
    const int64_t C = image.size(2), F = first_bias.numel();
    TORCH_CHECK(first_weight.is_contiguous() && first_weight.size(0) == 9 * C && first_weight.size(1) == F &&
                    F % 16 == 0 && first_slopes.numel() == F,
                "compact_forward: first conv must be [9 C, F] float32, F a multiple of 16");
    TORCH_CHECK(!weights.empty() && weights.size() == biases.size() && weights.size() == slopes.size(),
                "compact_forward: one weight, bias and slopes per layer");
    TORCH_CHECK(out.dim() == 3 && out.size(0) == scale * image.size(0) && out.size(1) == scale * image.size(1) &&
                    out.size(2) == C && out.stride(2) == 1 && out.scalar_type() == at::kFloat,
                "compact_forward: out must be [sH, sW, C] float32 with channel stride 1");
    TORCH_CHECK(stripe >= 1 && bands >= 1, "compact_forward: stripe and bands must be positive");
    Network net{image.data_ptr<float>(), image.stride(0), image.stride(1), C, image.size(0), image.size(1),
                first_weight.data_ptr<float>(), first_bias.data_ptr<float>(), first_slopes.data_ptr<float>(), F,
                {}, {}, {}, {}, amx, out.data_ptr<float>(), out.stride(0), out.stride(1), scale};
    for (size_t j = 0; j < weights.size(); ++j) {
        TORCH_CHECK(weights[j].is_contiguous() && biases[j].is_contiguous() && biases[j].scalar_type() == at::kFloat,
                    "compact_forward: weights and biases must be contiguous");
        net.weights.push_back(weights[j].data_ptr());
        net.biases.push_back(biases[j].data_ptr<float>());
        net.slopes.push_back(slopes[j].numel() ? slopes[j].data_ptr<float>() : nullptr);
        net.outputs.push_back(biases[j].numel());
        TORCH_CHECK(slopes[j].numel() == 0 || slopes[j].numel() == biases[j].numel(), "compact_forward: bad slopes");
    }
    TORCH_CHECK(net.outputs.back() >= C * scale * scale, "compact_forward: the last conv has too few outputs");
    TORCH_CHECK(!amx || superres::amx_ready(), "compact_forward: AMX asked for, but not available");
    const int64_t H = net.height;
    auto band = [&](int64_t index, bool parallel) {
        const int64_t a = H * index / bands, b = H * (index + 1) / bands;
        if (amx)
            run_band<uint16_t>(net, a, b, stripe, parallel);
        else
            run_band<float>(net, a, b, stripe, parallel);
    };
    if (bands == 1) {
        band(0, true);  // one band: each layer's rows over all threads
        return;
    }
    at::parallel_for(0, bands, 1, [&](int64_t first_band, int64_t last_band) {
        for (int64_t index = first_band; index < last_band; ++index) band(index, false);
    });
}
