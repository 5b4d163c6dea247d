// PWC-Net 81-channel correlation, CPU kernels (jt.code cpu_header; Jittor compiles them with -Ofast -fopenmp
// -march=native).
//
// The output is cut into tasks of kTaskRows rows of one batch item, shared among OpenMP threads in a single
// parallel region (on a busy machine every fork/join can cost a whole scheduler time slice: a version with
// three regions per call ran 20x slower under load). A task first copies the input rows
// it reads into a thread-private zero-bordered window, so the inner loops need no bounds checks, then works
// through strips of x (one SIMD vector): a strip's partial sums stay in registers while the channels
// (forward) or the 81 displacements (backward) are reduced, and every output is written once, by one thread:
// no atomics. Extra memory: a window of kTaskRows + 8 rows per thread, never an 81 x C x H x W product.
// Strip widths (32 bytes forward, 64 bytes backward), the backward channel block of 4 and the loop orders
// were the fastest of those tried on an AVX-512 Xeon with GCC 12.
// kMaxDisp, kGrid and kChannels come from cuda_ops/geometry.py: correlation_op.py prepends them to this text.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace sbvsr_corr {

constexpr int64_t kTaskRows = 8;
constexpr int kMaxStripBytes = 64;

// GCC/Clang vector of kBytes bytes: one strip of x.
template <typename T, int kBytes>
struct Strip {
    typedef T Vec __attribute__((vector_size(kBytes)));
    static constexpr int kLanes = kBytes / sizeof(T);

    static Vec load(const T* p) {
        Vec v;
        std::memcpy(&v, p, sizeof(v));
        return v;
    }
    // Writes the first n lanes of v * scale.
    static void store(T* p, Vec v, T scale, int64_t n) {
        for (int64_t l = 0; l < n; ++l) p[l] = v[l] * scale;
    }
};

// Rows [y0 - 4, y1 + 4) of one [C, H, W] map, zero outside the image, laid out [row][c][x] with a 4-pixel
// zero border left and right and room for the widest strip's shifted reads. The C rows of one image row sit
// next to each other, so loops over channels walk memory in short regular steps.
template <typename T>
class Window {
  public:
    void load(const T* map, int64_t C, int64_t H, int64_t W, int64_t y0, int64_t y1) {
        constexpr int64_t slack = kMaxStripBytes / sizeof(T);
        channels_ = C;
        first_row_ = y0 - kMaxDisp;
        row_len_ = (W + slack - 1) / slack * slack + 2 * slack;
        data_.assign((y1 - y0 + 2 * kMaxDisp) * C * row_len_, T(0));
        for (int64_t y = std::max<int64_t>(0, first_row_); y < std::min<int64_t>(H, y1 + kMaxDisp); ++y)
            for (int64_t c = 0; c < C; ++c)
                std::copy(map + (c * H + y) * W, map + (c * H + y + 1) * W, data_.data() + offset(c, y, 0));
    }
    // Element (channel c, image row y, image column x); x may be as low as -kMaxDisp.
    const T* at(int64_t c, int64_t y, int64_t x) const { return data_.data() + offset(c, y, x); }

  private:
    int64_t offset(int64_t c, int64_t y, int64_t x) const {
        return ((y - first_row_) * channels_ + c) * row_len_ + x + kMaxDisp;
    }
    int64_t channels_ = 0, first_row_ = 0, row_len_ = 0;
    std::vector<T> data_;
};

// Runs work(b, y0, y1) for every task of kTaskRows rows, in one OpenMP parallel region when there are at
// least kParallelMacs multiply-adds (smaller calls take less time than waking a busy machine's threads).
// Dynamic scheduling: when the OS takes one thread off the CPU, the others take over its remaining tasks.
template <typename Work>
void for_each_task(int64_t B, int64_t C, int64_t H, int64_t W, Work work) {
    constexpr int64_t kParallelMacs = int64_t(1) << 25;
    const int64_t per_item = (H + kTaskRows - 1) / kTaskRows;
    #pragma omp parallel for schedule(dynamic) if(B * C * H * W * kChannels >= kParallelMacs)
    for (int64_t task = 0; task < B * per_item; ++task) {
        const int64_t b = task / per_item, y0 = task % per_item * kTaskRows;
        work(b, y0, std::min(H, y0 + kTaskRows));
    }
}

// out[b, k, y, x] = (1/C) sum_c first[b, c, y, x] * second[b, c, y + dy, x + dx], k = (dy + 4) * 9 + dx + 4.
// dy is outside the strip loop so that the rows one (y, dy) pair reads stay in L1 across the strips
// (1.2-1.6x faster than strips outside).
template <typename T>
void forward_cpu(const T* first, const T* second, T* out, int64_t B, int64_t C, int64_t H, int64_t W) {
    typedef Strip<T, 32> S;
    const T scale = T(1) / T(C);
    for_each_task(B, C, H, W, [&](int64_t b, int64_t y0, int64_t y1) {
        static thread_local Window<T> f, s;
        f.load(first + b * C * H * W, C, H, W, y0, y1);
        s.load(second + b * C * H * W, C, H, W, y0, y1);
        for (int64_t y = y0; y < y1; ++y)
            for (int dy = -kMaxDisp; dy <= kMaxDisp; ++dy)
                for (int64_t x0 = 0; x0 < W; x0 += S::kLanes) {
                    typename S::Vec acc[kGrid] = {};
                    for (int64_t c = 0; c < C; ++c) {
                        const typename S::Vec fv = S::load(f.at(c, y, x0));
                        const T* sp = s.at(c, y + dy, x0 - kMaxDisp);
                        #pragma GCC unroll 9
                        for (int dx = 0; dx < kGrid; ++dx) acc[dx] += fv * S::load(sp + dx);
                    }
                    T* o = out + ((b * kChannels + (dy + kMaxDisp) * kGrid) * H + y) * W + x0;
                    for (int dx = 0; dx < kGrid; ++dx)
                        S::store(o + dx * H * W, acc[dx], scale, std::min<int64_t>(S::kLanes, W - x0));
                }
    });
}

// Analytic gradient of forward_cpu for both inputs, given grad = dL/dout:
//   d_first[c, y, x]  = (1/C) sum_k grad[k, y, x] * second[c, y + dy, x + dx]
//   d_second[c, y, x] = (1/C) sum_k grad[k, y - dy, x - dx] * first[c, y - dy, x - dx]
// Channels go in blocks of kBlock so that each grad strip loaded serves kBlock multiply-adds.
template <typename T>
void backward_cpu(const T* first, const T* second, const T* grad, T* d_first, T* d_second,
                  int64_t B, int64_t C, int64_t H, int64_t W) {
    typedef Strip<T, 64> S;
    constexpr int kBlock = 4;
    const T scale = T(1) / T(C);
    for_each_task(B, C, H, W, [&](int64_t b, int64_t y0, int64_t y1) {
        static thread_local Window<T> f, s, g;
        f.load(first + b * C * H * W, C, H, W, y0, y1);
        s.load(second + b * C * H * W, C, H, W, y0, y1);
        g.load(grad + b * kChannels * H * W, kChannels, H, W, y0, y1);
        for (int64_t y = y0; y < y1; ++y)
            for (int64_t x0 = 0; x0 < W; x0 += S::kLanes)
                for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
                    const int64_t block = std::min<int64_t>(kBlock, C - c0);
                    typename S::Vec to_first[kBlock] = {}, to_second[kBlock] = {};
                    for (int k = 0; k < kChannels; ++k) {
                        const int dy = k / kGrid - kMaxDisp, dx = k % kGrid - kMaxDisp;
                        const typename S::Vec g_here = S::load(g.at(k, y, x0));
                        const typename S::Vec g_back = S::load(g.at(k, y - dy, x0 - dx));
                        for (int i = 0; i < kBlock; ++i) {
                            const int64_t c = c0 + std::min<int64_t>(i, block - 1);  // a short last block repeats
                            to_first[i] += g_here * S::load(s.at(c, y + dy, x0 + dx));
                            to_second[i] += g_back * S::load(f.at(c, y - dy, x0 - dx));
                        }
                    }
                    for (int64_t i = 0; i < block; ++i) {
                        const int64_t offset = ((b * C + c0 + i) * H + y) * W + x0;
                        const int64_t lanes = std::min<int64_t>(S::kLanes, W - x0);
                        S::store(d_first + offset, to_first[i], scale, lanes);
                        S::store(d_second + offset, to_second[i], scale, lanes);
                    }
                }
    });
}

}  // namespace sbvsr_corr
