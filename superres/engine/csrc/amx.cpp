// bf16 3x3 convolution on AMX tiles (Intel Sapphire Rapids and later), fp32 sums; see superres/engine/amx.py.
//
// A direct convolution as an implicit matrix product: for each output row and block of 32 output
// pixels, each of the 9 taps and each chunk of 32 input channels adds
//     A (16 pixels x 32 input channels, read straight from the channels-last input rows)
//   x B (32 input x 16 output channels of that tap, packed as the tile unit wants: pairs of inputs)
// into fp32 accumulator tiles: 2 pixel blocks x 2 output-channel blocks = 4 accumulators, 2 A and
// 2 B tiles, the 8 tile registers. The epilogue of a block (bias, per-channel PReLU / LeakyReLU,
// conversion to bf16 or fp32, store) runs on the vector units between the tile products of the next
// block, so the two overlap. Input columns outside the map (the conv's zero padding at the left and
// right) are read through a small zero-filled staging copy; rows outside the map are skipped.

#include "rows.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512BF16__)
#define SUPERRES_AMX 1
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace superres {

// 32 input channels of a conv: the rows they lie in, at this channel offset in each pixel
struct AmxChunk {
    Rows<const uint16_t> rows;
    int64_t offset;
};

}  // namespace superres

#ifdef SUPERRES_AMX
namespace superres::amx_detail {

// Linux gives a process the (8 KB) AMX tile state only when asked (arch_prctl ARCH_REQ_XCOMP_PERM).
bool request_tile_state() {
    static bool granted = false;
    static std::once_flag once;
    std::call_once(once, [] {
        constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
        granted = syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
    });
    return granted;
}

struct TileConfig {
    uint8_t palette_id = 1;
    uint8_t start_row = 0;
    uint8_t reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
};

// The epilogue of one block of 32 pixels x 32 output channels, one pixel at a time.
template <typename Out>
struct Epilogue {
    const float* sums = nullptr;  // the 4 accumulators: [pixel block][channel block][16 pixels][16 channels]
    Out* out = nullptr;           // output of the block's first pixel, first channel
    int64_t pixel_stride = 0;
    int count = 0;  // pixels of the block inside the map
    bool activate = false;
    __m512 bias0, bias1, slope0, slope1;

    inline void pixel(int p) const {
        if (p >= count) return;
        const float* c = sums + (p >> 4) * 512 + (p & 15) * 16;
        __m512 v0 = _mm512_add_ps(_mm512_load_ps(c), bias0);
        __m512 v1 = _mm512_add_ps(_mm512_load_ps(c + 256), bias1);
        if (activate) {
            const __m512 zero = _mm512_setzero_ps();
            v0 = _mm512_mask_mul_ps(v0, _mm512_cmp_ps_mask(v0, zero, _CMP_LT_OQ), v0, slope0);
            v1 = _mm512_mask_mul_ps(v1, _mm512_cmp_ps_mask(v1, zero, _CMP_LT_OQ), v1, slope1);
        }
        Out* o = out + p * pixel_stride;
        if constexpr (sizeof(Out) == 2) {
            _mm512_storeu_si512(o, (__m512i)_mm512_cvtne2ps_pbh(v1, v0));
        } else {
            _mm512_storeu_ps(o, v0);
            _mm512_storeu_ps(o + 16, v1);
        }
    }
};

}  // namespace superres::amx_detail
#endif

namespace superres {

bool amx_ready() {
#ifdef SUPERRES_AMX
    return amx_detail::request_tile_state();
#else
    return false;
#endif
}

// Load the tile shapes the kernel uses (every tile 16 rows of 64 bytes: A 16 pixels x 32 bf16, B 16 input
// pairs x 16 outputs x 2 bf16, C 16 x 16 fp32) on the calling thread; amx_release when done.
void amx_configure() {
#ifdef SUPERRES_AMX
    // static: GCC's _tile_loadconfig tells the compiler it reads 8 bytes, so a local's other 56 could be
    // optimised away before it runs
    alignas(64) static const amx_detail::TileConfig config = [] {
        amx_detail::TileConfig tiles;
        for (int t = 0; t < 8; ++t) {
            tiles.rows[t] = 16;
            tiles.colsb[t] = 64;
        }
        return tiles;
    }();
    _tile_loadconfig(&config);
#endif
}

void amx_release() {
#ifdef SUPERRES_AMX
    _tile_release();
#endif
}

constexpr int64_t kMaxChunks = 16;  // input channels: 32 per chunk, 512 at most

// Output rows [lo, hi) of a 3x3 conv from its input `chunks` (rows outside the map are zero), into `out`
// (bf16 or fp32): bias, then PReLU with per-channel `slopes` unless null. weight: [9, K / 32, N / 16, 16, 32].
// Jobs are (output row, pair of 16-channel blocks); `configured`: the caller has loaded the tile shapes.
template <typename Out>
void amx_rows(const std::vector<AmxChunk>& chunks, int64_t lo, int64_t hi, int64_t width, const uint16_t* weight,
              int64_t n_blocks, const float* bias, const float* slopes, const Rows<Out>& out, bool parallel,
              bool configured) {
#ifdef SUPERRES_AMX
    using amx_detail::Epilogue;
    const int64_t kc_count = static_cast<int64_t>(chunks.size()), pairs = n_blocks / 2;
    TORCH_CHECK(kc_count <= kMaxChunks, "amx_rows: at most ", 32 * kMaxChunks, " input channels");
    for_range(parallel, (hi - lo) * pairs, [&](int64_t first_job, int64_t last_job) {
        if (!configured) amx_configure();
        alignas(64) float sums[2][1024];
        alignas(64) uint16_t stage[32 * 32];
        int parity = 0;
        Epilogue<Out> pending;
        for (int64_t job = first_job; job < last_job; ++job) {
            const int64_t m = lo + job / pairs, nb = (job % pairs) * 2, n = nb * 16;
            Out* out_row = out.row(m);
            const uint16_t* input_rows[3][kMaxChunks];  // row m + dy - 1 of each chunk (null: zero padding)
            for (int dy = 0; dy < 3; ++dy)
                for (int64_t kc = 0; kc < kc_count; ++kc) {
                    const uint16_t* row = chunks[kc].rows.row(m + dy - 1);
                    input_rows[dy][kc] = row == nullptr ? nullptr : row + chunks[kc].offset;
                }
            for (int64_t x0 = 0; x0 < width; x0 += 32) {
                _tile_zero(0);
                _tile_zero(1);
                _tile_zero(2);
                _tile_zero(3);
                int step = 0;
                for (int dy = 0; dy < 3; ++dy) {
                    for (int dx = 0; dx < 3; ++dx) {
                        const int64_t c0 = x0 + dx - 1;
                        const bool inside = c0 >= 0 && c0 + 32 <= width;
                        for (int64_t kc = 0; kc < kc_count; ++kc) {
                            const uint16_t* row = input_rows[dy][kc];
                            if (row == nullptr) continue;  // the zero padding above and below the map
                            const int64_t col_stride = chunks[kc].rows.col_stride;
                            const uint16_t* a = row + c0 * col_stride;
                            int64_t stride = col_stride * 2;
                            if (!inside) {  // the zero padding left and right of the map, in a copy
                                for (int p = 0; p < 32; ++p) {
                                    const int64_t c = c0 + p;
                                    if (c >= 0 && c < width)
                                        std::memcpy(stage + p * 32, row + c * col_stride, 64);
                                    else
                                        std::memset(stage + p * 32, 0, 64);
                                }
                                a = stage;
                                stride = 64;
                            }
                            _tile_loadd(4, a, stride);
                            _tile_loadd(5, reinterpret_cast<const char*>(a) + 16 * stride, stride);
                            const uint16_t* b = weight + (((dy * 3 + dx) * kc_count + kc) * n_blocks + nb) * 512;
                            _tile_loadd(6, b, 64);
                            _tile_loadd(7, b + 512, 64);
                            _tile_dpbf16ps(0, 4, 6);
                            _tile_dpbf16ps(1, 4, 7);
                            _tile_dpbf16ps(2, 5, 6);
                            _tile_dpbf16ps(3, 5, 7);
                            if (step < 16) {  // the previous block's epilogue, two pixels per step
                                pending.pixel(2 * step);
                                pending.pixel(2 * step + 1);
                            }
                            ++step;
                        }
                    }
                }
                for (int p = 2 * step; p < 32; ++p) pending.pixel(p);
                float* s = sums[parity];
                parity ^= 1;
                _tile_stored(0, s, 64);        // pixels 0-15, channels n .. n+15
                _tile_stored(1, s + 256, 64);  // pixels 0-15, channels n+16 .. n+31
                _tile_stored(2, s + 512, 64);
                _tile_stored(3, s + 768, 64);
                pending.sums = s;
                pending.out = out_row + x0 * out.col_stride + n;
                pending.pixel_stride = out.col_stride;
                pending.count = static_cast<int>(std::min<int64_t>(32, width - x0));
                pending.activate = slopes != nullptr;
                pending.bias0 = _mm512_loadu_ps(bias + n);
                pending.bias1 = _mm512_loadu_ps(bias + n + 16);
                if (slopes != nullptr) {
                    pending.slope0 = _mm512_loadu_ps(slopes + n);
                    pending.slope1 = _mm512_loadu_ps(slopes + n + 16);
                }
            }
        }
        for (int p = 0; p < 32; ++p) pending.pixel(p);
        if (!configured) amx_release();
    });
#else
    TORCH_CHECK(false, "amx_rows: this kernel was built without AMX");
#endif
}

// The input chunks of a conv whose input channel groups are `parts` (bf16, channels multiples of 32).
std::vector<AmxChunk> amx_chunks(const std::vector<Rows<const uint16_t>>& parts, const std::vector<int64_t>& channels) {
    std::vector<AmxChunk> chunks;
    for (size_t p = 0; p < parts.size(); ++p)
        for (int64_t c = 0; c < channels[p]; c += 32) chunks.push_back({parts[p], c});
    return chunks;
}

}  // namespace superres

bool amx_available() { return superres::amx_ready(); }

// inputs: channel groups of the conv's input rows [first, first + rows) of a map `height` rows high, each
// [rows, width, 32k] bf16 with channel stride 1. Writes output rows [lo, hi) to out ([hi - lo, width, N],
// bf16 or fp32, channel stride 1): bias, then PReLU with per-channel `slopes` unless that is empty.
// weight: [9, K / 32, N / 16, 16, 32] bf16 (amx.py's pack_weight).
void conv3x3_amx(const std::vector<torch::Tensor>& inputs, int64_t first, int64_t lo, int64_t hi, int64_t height,
                 const torch::Tensor& weight, const torch::Tensor& bias, const torch::Tensor& slopes, torch::Tensor out) {
    TORCH_CHECK(superres::amx_ready(), "conv3x3_amx: this CPU or kernel build has no AMX tiles");
    std::vector<int64_t> channels;
    const auto parts = superres::input_windows<uint16_t, at::BFloat16>("conv3x3_amx", inputs, at::kBFloat16, 32, "bfloat16",
                                                                      first, lo, hi, height, channels);
    const int64_t width = inputs[0].size(1);
    const auto chunks = superres::amx_chunks(parts, channels);
    const int64_t K = 32 * static_cast<int64_t>(chunks.size()), N = out.size(2);
    TORCH_CHECK(weight.dim() == 5 && weight.size(0) == 9 && weight.size(1) == K / 32 && weight.size(2) * 16 == N &&
                    weight.is_contiguous() && weight.scalar_type() == at::kBFloat16 && N % 32 == 0,
                "conv3x3_amx: weight must be [9, K/32, N/16, 16, 32] bfloat16, contiguous, N a multiple of 32");
    TORCH_CHECK(bias.numel() == N && bias.is_contiguous() && bias.scalar_type() == at::kFloat, "conv3x3_amx: bad bias");
    TORCH_CHECK(slopes.numel() == 0 || (slopes.numel() == N && slopes.is_contiguous() && slopes.scalar_type() == at::kFloat),
                "conv3x3_amx: bad slopes");
    TORCH_CHECK(out.dim() == 3 && out.size(0) == hi - lo && out.size(1) == width && out.stride(2) == 1,
                "conv3x3_amx: out must be [hi - lo, width, N] with channel stride 1");
    const auto* w = reinterpret_cast<const uint16_t*>(weight.data_ptr<at::BFloat16>());
    const float* s = slopes.numel() ? slopes.data_ptr<float>() : nullptr;
    if (out.scalar_type() == at::kBFloat16) {
        superres::amx_rows(chunks, lo, hi, width, w, N / 16, bias.data_ptr<float>(), s,
                           superres::window<uint16_t, at::BFloat16>(out, lo, height), true, false);
    } else {
        TORCH_CHECK(out.scalar_type() == at::kFloat, "conv3x3_amx: out must be bfloat16 or float32");
        superres::amx_rows(chunks, lo, hi, width, w, N / 16, bias.data_ptr<float>(), s,
                           superres::window<float>(out, lo, height), true, false);
    }
}
