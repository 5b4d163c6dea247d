// PWC-Net 81-channel correlation, CUDA kernels (jt.code cuda_header).
//
// Layout: a block covers a 32 x 4 pixel tile (one warp per tile row) and each thread owns one pixel. Channels
// are streamed through shared memory in chunks: every chunk's tile plus its 4-pixel halo is loaded once with
// coalesced reads (consecutive threads read consecutive x) and then re-read 81 times from shared memory,
// bank-conflict free because a warp always touches 32 consecutive words of one row.
// - forward: the thread keeps its 81 displacement sums in registers while it walks the channels, so the
//   channel reduction needs no cross-thread step at all; outputs are written once, coalesced.
// - backward: one launch computes both input gradients. A thread needs exactly 81 grad values for its pixel
//   (at the pixel itself for d_first, at the pixel minus each displacement for d_second), loads them into
//   registers once and then produces one gradient value per channel: no atomics, no intermediate buffers.
// kMaxDisp, kGrid and kChannels come from cuda_ops/geometry.py: correlation.py prepends them to this text.

#include <cstdint>

namespace sbvsr_corr {

constexpr int kTileX = 32;
constexpr int kTileY = 4;
constexpr int kThreads = kTileX * kTileY;

// Channels per shared-memory chunk: 8 for float, 4 for double (keeps a chunk of halo tiles ~15 KB).
template <typename T>
__host__ __device__ constexpr int chunk_channels() { return 32 / static_cast<int>(sizeof(T)); }

// Tile of `chunk` channels with a halo of R pixels, origin at (y0 - R, x0 - R); zero outside the image or past
// the last channel. Consecutive threads fill consecutive x, so each row is a coalesced global read.
template <typename T, int R>
struct Tile {
    static constexpr int kRows = kTileY + 2 * R;
    static constexpr int kCols = kTileX + 2 * R;
    T v[chunk_channels<T>()][kRows][kCols];

    __device__ void load(const T* __restrict__ src, int channels, int H, int W, int y0, int x0) {
        constexpr int kPlane = kRows * kCols;
        for (int i = threadIdx.x; i < chunk_channels<T>() * kPlane; i += kThreads) {
            const int cc = i / kPlane, hy = i % kPlane / kCols, hx = i % kCols;
            const int gy = y0 - R + hy, gx = x0 - R + hx;
            const bool inside = cc < channels && gy >= 0 && gy < H && gx >= 0 && gx < W;
            v[cc][hy][hx] = inside ? src[static_cast<int64_t>(cc) * H * W + gy * W + gx] : T(0);
        }
    }
};

template <typename T>
__global__ void __launch_bounds__(kThreads)
forward_kernel(const T* __restrict__ first, const T* __restrict__ second, T* __restrict__ out,
               int C, int H, int W) {
    constexpr int kChunk = chunk_channels<T>();
    __shared__ Tile<T, 0> f;
    __shared__ Tile<T, kMaxDisp> s;
    const int tx = threadIdx.x % kTileX, ty = threadIdx.x / kTileX;
    const int x0 = blockIdx.x * kTileX, y0 = blockIdx.y * kTileY, b = blockIdx.z;
    const int64_t plane = static_cast<int64_t>(H) * W;

    T acc[kChannels];
    #pragma unroll
    for (int k = 0; k < kChannels; ++k) acc[k] = T(0);

    for (int c0 = 0; c0 < C; c0 += kChunk) {
        const int64_t offset = (static_cast<int64_t>(b) * C + c0) * plane;
        f.load(first + offset, C - c0, H, W, y0, x0);
        s.load(second + offset, C - c0, H, W, y0, x0);
        __syncthreads();
        #pragma unroll
        for (int cc = 0; cc < kChunk; ++cc) {
            const T fv = f.v[cc][ty][tx];
            #pragma unroll
            for (int dy = 0; dy < kGrid; ++dy) {
                #pragma unroll
                for (int dx = 0; dx < kGrid; ++dx) acc[dy * kGrid + dx] += fv * s.v[cc][ty + dy][tx + dx];
            }
        }
        __syncthreads();
    }

    const int x = x0 + tx, y = y0 + ty;
    if (x >= W || y >= H) return;
    const T scale = T(1) / T(C);
    T* o = out + static_cast<int64_t>(b) * kChannels * plane + y * W + x;
    #pragma unroll
    for (int k = 0; k < kChannels; ++k) o[k * plane] = acc[k] * scale;
}

// Gradient for one input over one tile. kSign = +1: d_first[c, p] = (1/C) sum_k grad[k, p] * other[c, p + d_k];
// kSign = -1: d_second[c, p] = (1/C) sum_k grad[k, p - d_k] * other[c, p - d_k]. `other` is the opposite map
// (second for +1, first for -1).
template <typename T, int kSign>
__device__ void backward_tile(const T* __restrict__ other, const T* __restrict__ grad, T* __restrict__ d_input,
                              Tile<T, kMaxDisp>& tile, int b, int C, int H, int W) {
    constexpr int kChunk = chunk_channels<T>();
    const int tx = threadIdx.x % kTileX, ty = threadIdx.x / kTileX;
    const int x0 = blockIdx.x * kTileX, y0 = blockIdx.y * kTileY;
    const int x = x0 + tx, y = y0 + ty;
    const int64_t plane = static_cast<int64_t>(H) * W;

    T g[kChannels];
    const T* grad_b = grad + static_cast<int64_t>(b) * kChannels * plane;
    #pragma unroll
    for (int k = 0; k < kChannels; ++k) {
        const int gy = kSign > 0 ? y : y - (k / kGrid - kMaxDisp);
        const int gx = kSign > 0 ? x : x - (k % kGrid - kMaxDisp);
        const bool inside = x < W && y < H && gy >= 0 && gy < H && gx >= 0 && gx < W;
        g[k] = inside ? grad_b[k * plane + gy * W + gx] : T(0);
    }

    const T scale = T(1) / T(C);
    for (int c0 = 0; c0 < C; c0 += kChunk) {
        const int64_t offset = (static_cast<int64_t>(b) * C + c0) * plane;
        tile.load(other + offset, C - c0, H, W, y0, x0);
        __syncthreads();
        #pragma unroll
        for (int cc = 0; cc < kChunk; ++cc) {
            T sum = T(0);
            #pragma unroll
            for (int dy = 0; dy < kGrid; ++dy) {
                #pragma unroll
                for (int dx = 0; dx < kGrid; ++dx) {
                    const int hy = ty + kMaxDisp + kSign * (dy - kMaxDisp);
                    const int hx = tx + kMaxDisp + kSign * (dx - kMaxDisp);
                    sum += g[dy * kGrid + dx] * tile.v[cc][hy][hx];
                }
            }
            if (x < W && y < H && c0 + cc < C) d_input[offset + cc * plane + y * W + x] = sum * scale;
        }
        __syncthreads();
    }
}

// Blocks with blockIdx.z < B compute d_first of batch item z, the others d_second of item z - B.
template <typename T>
__global__ void __launch_bounds__(kThreads)
backward_kernel(const T* __restrict__ first, const T* __restrict__ second, const T* __restrict__ grad,
                T* __restrict__ d_first, T* __restrict__ d_second, int B, int C, int H, int W) {
    __shared__ Tile<T, kMaxDisp> tile;
    if (blockIdx.z < B)
        backward_tile<T, 1>(second, grad, d_first, tile, blockIdx.z, C, H, W);
    else
        backward_tile<T, -1>(first, grad, d_second, tile, blockIdx.z - B, C, H, W);
}

inline dim3 tile_grid(int64_t H, int64_t W, int64_t z) {
    return dim3((W + kTileX - 1) / kTileX, (H + kTileY - 1) / kTileY, z);
}

template <typename T>
void forward_cuda(const T* first, const T* second, T* out, int64_t B, int64_t C, int64_t H, int64_t W) {
    forward_kernel<T><<<tile_grid(H, W, B), kThreads>>>(first, second, out, C, H, W);
}

template <typename T>
void backward_cuda(const T* first, const T* second, const T* grad, T* d_first, T* d_second,
                   int64_t B, int64_t C, int64_t H, int64_t W) {
    backward_kernel<T><<<tile_grid(H, W, 2 * B), kThreads>>>(first, second, grad, d_first, d_second,
                                                             B, C, H, W);
}

}  // namespace sbvsr_corr
