// CPU emulation of the CUDA built-ins used by wgfsim/primitives/cuda/*.cu.
//
// Included before the unmodified kernel source, so g++ compiles exactly the
// code NVRTC compiles (the `#ifdef __CUDA_ARCH__` branches excepted: those
// inline-PTX instructions are replaced by their libm equivalents there).
//
// Execution model: a launch runs its blocks one after another; the threads of
// a block are cooperative fibers (ucontext) on one OS thread.  __syncthreads()
// is a real barrier: the calling fiber yields and the block resumes only when
// every live thread of the block has reached it, so a missing barrier shows
// up as a wrong result (a thread reads a tile another has not yet written, or
// overwrites one still being read), deterministically.  __shared__ variables
// are function-local statics: one copy, shared by the block's threads; blocks
// run one at a time so they never share it.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <vector>
#include <ucontext.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct wgf_dim3 {
  unsigned int x = 1, y = 1, z = 1;
};

// the current fiber's coordinates: set by the scheduler before it resumes a thread
static wgf_dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace wgf_emu {

struct Fiber {
  ucontext_t ctx;
  std::vector<char> stack;
  bool done = false;
  long long barriers = 0;  // __syncthreads() calls so far
};

static ucontext_t g_scheduler;
static std::vector<Fiber> g_fibers;
static int g_current = -1;
static void (*g_body)(void*) = nullptr;
static void* g_args = nullptr;
static int g_error = 0;  // 1: threads of a block disagreed on the number of barriers

static void fiber_entry() {
  g_body(g_args);
  g_fibers[g_current].done = true;
  // returning follows uc_link back to the scheduler
}

inline void syncthreads() {
  Fiber& f = g_fibers[g_current];
  ++f.barriers;
  swapcontext(&f.ctx, &g_scheduler);
}

// Run blocks [block_begin, block_end) of a grid (grid_x, grid_y) of `threads` threads each
// (blocks linearised x fastest).  Returns 0, or 1 if the barrier counts of a block diverged.
inline int launch(void (*body)(void*), void* args, unsigned grid_x, unsigned grid_y, unsigned threads,
                  long long block_begin, long long block_end) {
  constexpr size_t kStack = 256 * 1024;
  g_body = body;
  g_args = args;
  g_error = 0;
  g_fibers.resize(threads);
  for (auto& f : g_fibers)
    if (f.stack.size() != kStack) f.stack.assign(kStack, 0);
  gridDim.x = grid_x;
  gridDim.y = grid_y;
  gridDim.z = 1;
  blockDim.x = threads;
  blockDim.y = blockDim.z = 1;
  for (long long b = block_begin; b < block_end; ++b) {
    blockIdx.x = (unsigned)(b % grid_x);
    blockIdx.y = (unsigned)(b / grid_x);
    blockIdx.z = 0;
    for (unsigned t = 0; t < threads; ++t) {
      Fiber& f = g_fibers[t];
      f.done = false;
      f.barriers = 0;
      getcontext(&f.ctx);
      f.ctx.uc_stack.ss_sp = f.stack.data();
      f.ctx.uc_stack.ss_size = f.stack.size();
      f.ctx.uc_link = &g_scheduler;
      makecontext(&f.ctx, fiber_entry, 0);
    }
    for (;;) {
      bool any = false;
      long long count = -1;
      for (unsigned t = 0; t < threads; ++t) {
        Fiber& f = g_fibers[t];
        if (f.done) continue;
        g_current = (int)t;
        threadIdx.x = t;
        threadIdx.y = threadIdx.z = 0;
        swapcontext(&g_scheduler, &f.ctx);
        if (!f.done) {
          any = true;
          // every thread still running must be waiting at the same barrier
          if (count < 0) count = f.barriers;
          else if (count != f.barriers) g_error = 1;
        }
      }
      if (!any) break;
      // a thread that finished while others wait at a barrier: divergent __syncthreads
      for (unsigned t = 0; t < threads; ++t)
        if (g_fibers[t].done && g_fibers[t].barriers < count) g_error = 1;
    }
  }
  g_current = -1;
  return g_error;
}

}  // namespace wgf_emu

inline void __syncthreads() { wgf_emu::syncthreads(); }

template <typename T>
inline T __ldg(const T* p) { return *p; }

inline float __int_as_float(int i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}
inline int __float_as_int(float f) {
  int i;
  std::memcpy(&i, &f, sizeof i);
  return i;
}
inline double __longlong_as_double(long long i) {
  double f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}
// CUDA's single-precision device functions, by their libm names
using std::exp;
using std::exp2;
using std::fma;
using std::fmax;
using std::log;
using std::sqrt;
inline float __expf(float v) { return std::exp(v); }
inline float __logf(float v) { return std::log(v); }
inline float rsqrtf(float v) { return 1.0f / std::sqrt(v); }
inline double rsqrt(double v) { return 1.0 / std::sqrt(v); }
