// Host emulation of the CUDA features cuda_ops/correlation_cuda.cu uses, so that the unchanged kernel source
// compiles with a plain C++ compiler and its arithmetic runs on the CPU.
//
// - The blocks of a grid run one after another; the threads of a block run as real std::threads, so a missing
//   __syncthreads or a race between threads shows up (as wrong results, or as reports under ThreadSanitizer).
// - __shared__ variables become static locals: one object shared by every thread of the block, which is
//   CUDA's semantics as long as blocks never overlap. Unlike CUDA's, this storage starts zeroed and keeps the
//   previous block's values, so a read of shared memory no thread of the block wrote is not flagged as such
//   (it shows only when the stale value gives a wrong result).
// - __syncthreads is a barrier that also checks CUDA's rule that every thread of the block reaches the same
//   barrier: threads waiting at different __syncthreads, or a barrier passed after some thread has exited,
//   fail the launch.
// - threadIdx/blockIdx/blockDim/gridDim are thread_local, set for each thread before it enters the kernel.
// The launch syntax `kernel<<<grid, block>>>(args)` is not C++: the test rewrites it into
// cuda_host::launch(kernel, dim3(grid), dim3(block), args) before compiling.
#pragma once

#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __launch_bounds__(...)
#define __shared__ static
#define __syncthreads() ::cuda_host::sync_threads(__LINE__)

struct uint3 {
    unsigned x, y, z;
};

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x = 1, unsigned y = 1, unsigned z = 1) : x(x), y(y), z(z) {}
};

inline thread_local uint3 threadIdx, blockIdx;
inline thread_local dim3 blockDim, gridDim;

namespace cuda_host {

// Reusable barrier for the threads of one block, with the checks described at the top of this file.
class BlockBarrier {
  public:
    explicit BlockBarrier(int threads) : threads_(threads), live_(threads) {}

    void arrive_and_wait(int line) {
        std::unique_lock<std::mutex> lock(mutex_);
        if (arrived_ == 0) {
            line_ = line;
        } else if (line != line_) {
            fail("threads wait at different __syncthreads (lines " + std::to_string(line_) + " and " +
                 std::to_string(line) + ")");
        }
        if (++arrived_ == live_) {
            release();
            return;
        }
        const unsigned long phase = phase_;
        cv_.wait(lock, [&] { return phase_ != phase; });
    }

    // Called when a thread leaves the kernel.
    void exit() {
        std::lock_guard<std::mutex> lock(mutex_);
        --live_;
        if (arrived_ > 0 && arrived_ == live_) release();
    }

    std::string error() {
        std::lock_guard<std::mutex> lock(mutex_);
        return error_;
    }

  private:
    void release() {
        if (live_ != threads_)
            fail("__syncthreads at line " + std::to_string(line_) + " passed by " + std::to_string(arrived_) +
                 " of " + std::to_string(threads_) + " threads (the others have exited)");
        arrived_ = 0;
        ++phase_;
        cv_.notify_all();
    }

    void fail(const std::string& message) {
        if (error_.empty()) error_ = message;
    }

    std::mutex mutex_;
    std::condition_variable cv_;
    const int threads_;
    int live_, arrived_ = 0, line_ = 0;
    unsigned long phase_ = 0;
    std::string error_;
};

inline thread_local BlockBarrier* block_barrier = nullptr;

inline void sync_threads(int line) { block_barrier->arrive_and_wait(line); }

// Every launch's configuration, in order, so that a driver can report the geometry the source chose.
inline std::vector<std::pair<dim3, dim3>> launches;

// Runs kernel(args...) over the grid as described at the top of this file; throws when a block broke a rule.
// Arguments are converted to the kernel's parameter types once, as a CUDA launch does.
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, Args... args) {
    const std::tuple<Params...> params(args...);
    launches.emplace_back(grid, block);
    const unsigned threads = block.x * block.y * block.z;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                BlockBarrier barrier(static_cast<int>(threads));
                std::vector<std::thread> workers;
                workers.reserve(threads);
                for (unsigned t = 0; t < threads; ++t)
                    workers.emplace_back([&, t] {
                        threadIdx = {t % block.x, t / block.x % block.y, t / (block.x * block.y)};
                        blockIdx = {bx, by, bz};
                        blockDim = block;
                        gridDim = grid;
                        block_barrier = &barrier;
                        std::apply(kernel, params);
                        barrier.exit();
                    });
                for (std::thread& worker : workers) worker.join();
                const std::string error = barrier.error();
                if (!error.empty())
                    throw std::runtime_error("block (" + std::to_string(bx) + ", " + std::to_string(by) + ", " +
                                             std::to_string(bz) + "): " + error);
            }
}

}  // namespace cuda_host
