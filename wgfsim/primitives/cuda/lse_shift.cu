// Fused log-sum-exp / mean-shift and distance-sum kernels for wgfsim (CuPy RawModule, NVRTC).
//
// The algorithm, the formulas and the launch contract are documented in
// wgfsim/primitives/gpu.py; this file holds only the device code.  It is plain
// CUDA C++17 with no #include, because NVRTC compiles it without a host
// toolchain.  Each kernel is a template: gpu.py instantiates exactly one per
// RawModule through `name_expressions` (for example
// "wgf::lse_shift_fast<float, 2, true, false, false, true, 1, 16, 256, 128, false>").
//
//   lse_i   = log sum_j exp(g_j - c(x_i, y_j)/eps)                 (N,)
//   shift_i = sum_j softmax_j(g_j - c(x_i, y_j)/eps) u(y_j - x_i)  (N, d)
//   u(v) = v, or v/|v| (0 at v = 0) with UNIT;  c = |v|^2/2 (SQ) or |v|.
//
// Layouts: x (N, d), y (M, d) row-major contiguous; g (M,); lse (N,);
// shift (N, d).  Semantics follow wgfsim/primitives/cpu.py exactly: a row whose
// every column is excluded (-inf offsets or the masked diagonal) gets
// lse = -inf and shift = 0; extreme logits saturate, never NaN; a NaN in a
// point or an offset gives NaN (never an "empty row"): a NaN logit makes its
// weight, hence the row's sum, NaN, and the row's results follow.

namespace wgf {

// ---------------------------------------------------------------------------
// Numeric policy per precision.
//
// float: logits are carried in base 2 (multiplied by log2 e once, in the cost
// scale and in the offsets as they enter shared memory), so each weight
// 2^(l - m) is one MUFU.EX2 (ex2.approx.ftz: relative error < 2^-22, far inside
// the 1e-4 contract; denormal weights flush to 0, they cannot move a sum whose
// largest term is 1).
// double: natural base with the libdevice exp/log (about 1 ulp), because the
// float64 path is held to 1e-10 against the dense reference.
// ---------------------------------------------------------------------------
template <typename T>
struct Num;

template <>
struct Num<float> {
  static constexpr float kLogScale = 1.4426950408889634f;  // log2(e): logits in base 2
  static __device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }
  static __device__ __forceinline__ float mad(float a, float b, float c) { return fmaf(a, b, c); }
  static __device__ __forceinline__ float ex(float t) {  // 2^t; 2^-inf = +0
#ifdef __CUDA_ARCH__
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(t));
    return r;
#else
    return exp2f(t);  // host emulation only (tests of the kernel logic without a GPU)
#endif
  }
  static __device__ __forceinline__ float lse(float m, float s) {  // back to natural log
    return (m + log2f(s)) * 0.69314718055994531f;
  }
  // an offset in the logits' base.  |g| > FLT_MAX / log2(e) ~ 2.36e38 overflows there: NaN
  // (the row's result says the input is out of range) rather than an infinite weight or zero
  static __device__ __forceinline__ float offset(float g) {
    const float s = g * kLogScale;
    return (fabsf(s) == __int_as_float(0x7f800000) && fabsf(g) != __int_as_float(0x7f800000)) ? __int_as_float(0x7fc00000) : s;
  }
  // |v|^(1/2) (the euclidean cost) and, when `unit`, 1/|v|^(1/2) (0 at v = 0), from one
  // reciprocal square root: v * rsqrt(v) takes one special-function instruction, not two
  static __device__ __forceinline__ void norm(float v, float& core, float& inv) {
#ifdef __CUDA_ARCH__
    float r;
    asm("rsqrt.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(v));
#else
    const float r = 1.0f / sqrtf(v);
#endif
    // ftz: a subnormal |v|^2 counts as a coincident point (rsqrt(0) = inf, and 0 * inf is NaN)
    inv = v >= 1.17549435e-38f ? r : 0.0f;
    core = v * inv;
  }
  static __device__ __forceinline__ float root(float v) {  // sqrt(v), v >= 0; 0 -> 0
#ifdef __CUDA_ARCH__
    float r;
    asm("sqrt.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(v));
    return r;
#else
    return sqrtf(v);
#endif
  }
  static __device__ __forceinline__ float inv_norm(float v) {  // 1/sqrt(v) for v > 0, else 0
#ifdef __CUDA_ARCH__
    float r;
    asm("rsqrt.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(v));
    return v >= 1.17549435e-38f ? r : 0.0f;  // ftz: a subnormal |v|^2 counts as a coincident point
#else
    return v >= 1.17549435e-38f ? 1.0f / sqrtf(v) : 0.0f;
#endif
  }
};

template <>
struct Num<double> {
  static constexpr double kLogScale = 1.0;  // natural base
  static __device__ __forceinline__ double neg_inf() { return __longlong_as_double(0xfff0000000000000LL); }
  static __device__ __forceinline__ double mad(double a, double b, double c) { return ::fma(a, b, c); }
  static __device__ __forceinline__ double ex(double t) { return exp(t); }
  static __device__ __forceinline__ double lse(double m, double s) { return m + log(s); }
  static __device__ __forceinline__ double offset(double g) { return g; }
  static __device__ __forceinline__ double root(double v) { return sqrt(v); }
  static __device__ __forceinline__ double inv_norm(double v) {  // as cpu.py: 1/|v| if |v| > 0 else 0
    const double nrm = sqrt(v);
    return nrm > 0.0 ? 1.0 / nrm : 0.0;
  }
  // float64 keeps the correctly rounded sqrt (and divides only when `unit` needs 1/|v|)
  static __device__ __forceinline__ void norm(double v, double& core, double& inv) {
    core = sqrt(v);
    inv = core > 0.0 ? 1.0 / core : 0.0;
  }
};

// Pad a column record (d coordinates + the offset) to 2 or a multiple of 4
// elements so that one column is one or a few wide shared-memory loads.
template <int D>
struct Pad {
  static constexpr int value = (D + 1 <= 2) ? 2 : ((D + 1 + 3) / 4) * 4;
};

// One column of a shared tile: y_j (D,) then the (scaled) offset g_j, padded.
template <typename T, int P>
struct alignas((P * sizeof(T)) >= 16 ? 16 : (P * sizeof(T))) Col {
  T v[P];
};

// fmax is one FMNMX instruction (a compare and a select otherwise).  It skips a NaN
// logit, which is then carried by the sums instead: exp(NaN - m) = NaN
__device__ __forceinline__ float max2(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double max2(double a, double b) { return fmax(a, b); }

// Compensated (Kahan) addition for folding one tile's sum into the running sum:
// the cross-tile error stays O(u) instead of growing like (M/TILE) u.  NVRTC does
// not reassociate floating point (no fast-math), so the compensation survives.
template <typename T>
__device__ __forceinline__ void kahan_add(T& sum, T& comp, const T v) {
  const T yv = v - comp;
  const T t = sum + yv;
  comp = (t - sum) - yv;
  sum = t;
}

// ---------------------------------------------------------------------------
// Fast path, d = D <= 8 known at compile time.
//
// Block: BLOCK threads, each owning R rows (row = blockIdx.x*blockDim.x*R +
// r*blockDim.x + threadIdx.x, so warps read and write consecutive rows).
// Columns stream through shared memory TILE at a time (coordinates and offset
// packed per column: one broadcast load per column serves the R rows of a
// thread).  Within a tile, K columns at a time:
//   pass 1: K logits per row into registers (and the K displacements when
//           they fit), their maximum tm;
//   if tm > m: rescale the running sums by exp(m - tm) once (FlashAttention);
//   pass 2: p = exp(l - m), one exponential per pair, accumulated.
// LAZY (an alternative, chosen per tuning entry): skip the per-pair maximum and
// take p = exp(l - m) against the current reference m directly; a register
// block is accepted if its sum stays <= 2^64 (no weight above 2^64, so nothing
// overflows, even times a displacement; exp of a logit far above m gives inf and
// fails the test) and otherwise redone exactly as above.  Same results to rounding, one instruction less per
// pair; m is then a reference within 2^64 of the maximum rather than the
// maximum itself, which changes nothing in lse = m + log(sum).
// Sums are blocked in three levels: plain sums within a register block of K
// columns and across the blocks of a tile, compensated (Kahan) across tiles, so
// the float32 rounding error is about (K + TILE/K) u, independent of M, instead
// of M u.
//
// Column split (gridDim.y > 1, when N alone gives too few blocks to fill the
// device): block (bx, by) reduces its rows over the by-th of gridDim.y
// contiguous, tile-aligned column ranges and writes the partial triple
// (reference m, sum s, displacement sum a) of each row to `part`, laid out
// (gridDim.y, N, 2 + D) as [m, s, a_0 .. a_{D-1}]; lse_shift_combine merges
// them.  With gridDim.y == 1 the block writes lse and shift directly.
// ---------------------------------------------------------------------------
template <typename T, int D, bool SQ, bool EXCL, bool UNIT, bool SHIFT, int R, int K, int TILE, int BLOCK, bool LAZY>
__global__ void __launch_bounds__(BLOCK)
lse_shift_fast(const T* __restrict__ x,    // (N, D)
               const T* __restrict__ y,    // (M, D)
               const T* __restrict__ g,    // (M,)
               const int n, const int m,
               const T c,                  // logit = kLogScale*g - c * cost_core, c = kLogScale/eps (x 1/2 for SQ)
               T* __restrict__ lse_out,    // (N,)
               T* __restrict__ shift_out,  // (N, D); not touched unless SHIFT
               T* __restrict__ part)       // (gridDim.y, N, 2 + D) partial triples; only if gridDim.y > 1
{
  static_assert(TILE % K == 0, "TILE must be a multiple of K");
  constexpr int P = Pad<D>::value;
  // keeping K displacements per row in registers saves D subtractions per pair
  // in pass 2; beyond ~64 values the register file spills, so recompute them
  constexpr bool kStore = SHIFT && (R * K * D <= 64);
  using N_ = Num<T>;
  const T ninf = N_::neg_inf();

  __shared__ Col<T, P> tile[TILE];

  const int base = blockIdx.x * blockDim.x * R + threadIdx.x;
  int rows[R];
  T xr[R][D];
  T mx[R], s[R], acc[R][D], cs[R], cacc[R][D];  // running max, sums, Kahan compensations
#pragma unroll
  for (int r = 0; r < R; ++r) {
    rows[r] = base + r * blockDim.x;
    // rows past the end compute on a valid row and are never written
    const long long rc = rows[r] < n ? rows[r] : n - 1;
#pragma unroll
    for (int q = 0; q < D; ++q) xr[r][q] = x[rc * D + q];
    mx[r] = ninf;
    s[r] = T(0);
    cs[r] = T(0);
#pragma unroll
    for (int q = 0; q < D; ++q) {
      acc[r][q] = T(0);
      cacc[r][q] = T(0);
    }
  }

  // this block's columns [jb, je): whole tiles, the last range possibly shorter
  const int tiles = (m + TILE - 1) / TILE;
  const int per = (tiles + (int)gridDim.y - 1) / (int)gridDim.y;  // tiles per column range
  const int jb = (int)blockIdx.y * per * TILE;
  const int je = (m - jb) < per * TILE ? m : jb + per * TILE;
  for (int j0 = jb; j0 < je; j0 += TILE) {
    const int cols = (je - j0) < TILE ? (je - j0) : TILE;
    __syncthreads();  // the previous tile is consumed by every thread
    // coalesced: consecutive threads read consecutive elements of y's (cols*D) block
    for (int e = threadIdx.x; e < TILE * D; e += blockDim.x) {
      const int col = e / D;
      tile[col].v[e - col * D] = col < cols ? y[(long long)j0 * D + e] : T(0);
    }
    // padding columns get offset -inf: weight exactly 0, no branch in the inner loop
    for (int col = threadIdx.x; col < TILE; col += blockDim.x)
      tile[col].v[D] = col < cols ? N_::offset(g[j0 + col]) : ninf;
    __syncthreads();

    T ts[R], tacc[R][D];  // this tile's sums, relative to the same running max
#pragma unroll
    for (int r = 0; r < R; ++r) {
      ts[r] = T(0);
#pragma unroll
      for (int q = 0; q < D; ++q) tacc[r][q] = T(0);
    }

    for (int c0 = 0; c0 < cols; c0 += K) {
      T l[R][K];                                                // logits (scaled base)
      T dv[kStore ? R : 1][kStore ? K : 1][kStore ? D : 1];     // y_j - x_i
      T un[UNIT ? R : 1][UNIT ? K : 1];                         // 1/|y_j - x_i| or 0
      // pass 1: logits
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const Col<T, P> cv = tile[c0 + k];  // broadcast: every lane reads the same column
#pragma unroll
        for (int r = 0; r < R; ++r) {
          T d2 = T(0);
#pragma unroll
          for (int q = 0; q < D; ++q) {
            const T t = cv.v[q] - xr[r][q];
            d2 = N_::mad(t, t, d2);
            if constexpr (kStore) dv[r][k][q] = t;
          }
          T core;
          if constexpr (SQ) {
            core = d2;
            if constexpr (UNIT) un[r][k] = N_::inv_norm(d2);
          } else {
            T inv;
            N_::norm(d2, core, inv);
            if constexpr (UNIT) un[r][k] = inv;
          }
          l[r][k] = N_::mad(-c, core, cv.v[D]);
        }
      }
      if constexpr (EXCL) {
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const int dj = rows[r] - (j0 + c0);
          if ((unsigned)dj < (unsigned)K) {  // the diagonal falls in these K columns (rare)
#pragma unroll
            for (int k = 0; k < K; ++k)
              if (k == dj) l[r][k] = ninf;
          }
        }
      }
      // pass 2 for row r against the reference ref: block sums (bs, bacc), one exponential per pair
      auto weigh = [&](const int r, const T ref, T& bs, T (&bacc)[D]) {
        bs = T(0);
#pragma unroll
        for (int q = 0; q < D; ++q) bacc[q] = T(0);
#pragma unroll
        for (int k = 0; k < K; ++k) {
          const T p = N_::ex(l[r][k] - ref);
          bs += p;
          if constexpr (SHIFT) {
            T w = p;
            if constexpr (UNIT) w *= un[r][k];
#pragma unroll
            for (int q = 0; q < D; ++q) {
              T t;
              if constexpr (kStore) t = dv[r][k][q];
              else t = tile[c0 + k].v[q] - xr[r][q];
              bacc[q] = N_::mad(w, t, bacc[q]);
            }
          }
        }
      };
#pragma unroll
      for (int r = 0; r < R; ++r) {
        T bs, bacc[D];
        bool done = false;
        if constexpr (LAZY) {
          if (mx[r] != ninf) {
            weigh(r, mx[r], bs, bacc);
            done = bs <= T(18446744073709551616.0);  // 2^64; false for inf
          }
        }
        if (!done) {
          T tm = l[r][0];
#pragma unroll
          for (int k = 1; k < K; ++k) tm = max2(tm, l[r][k]);
          if (tm > mx[r]) {
            // raise the running max once per K columns; exp(-inf - tm) = 0 on the first hit
            const T f = N_::ex(mx[r] - tm);
            s[r] *= f;
            cs[r] *= f;
            ts[r] *= f;
#pragma unroll
            for (int q = 0; q < D; ++q) {
              acc[r][q] *= f;
              cacc[r][q] *= f;
              tacc[r][q] *= f;
            }
            mx[r] = tm;
          }
          // nothing finite seen yet: every l is -inf and exp(-inf - 0) = 0 (not exp(NaN))
          weigh(r, mx[r] == ninf ? T(0) : mx[r], bs, bacc);
        }
        ts[r] += bs;
#pragma unroll
        for (int q = 0; q < D; ++q) tacc[r][q] += bacc[q];
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
      kahan_add(s[r], cs[r], ts[r]);
#pragma unroll
      for (int q = 0; q < D; ++q) kahan_add(acc[r][q], cacc[r][q], tacc[r][q]);
    }
  }

#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int row = rows[r];
    if (row >= n) continue;
    // total >= 1 as soon as one logit is finite (the max contributes exp(0)); 0: empty
    // row; NaN (a NaN logit): NaN results, through lse(m, NaN) and the division
    const T total = s[r] - cs[r];
    if (gridDim.y > 1) {
      T* __restrict__ p = part + ((long long)blockIdx.y * n + row) * (2 + D);
      p[0] = mx[r];
      p[1] = total;
#pragma unroll
      for (int q = 0; q < D; ++q) p[2 + q] = acc[r][q] - cacc[r][q];
      continue;
    }
    const bool empty = total == T(0);
    lse_out[row] = empty ? ninf : N_::lse(mx[r], total);
    if constexpr (SHIFT) {
#pragma unroll
      for (int q = 0; q < D; ++q)
        shift_out[(long long)row * D + q] = empty ? T(0) : (acc[r][q] - cacc[r][q]) / total;
    }
  }
}

// ---------------------------------------------------------------------------
// Merge the partial triples of a column split (see lse_shift_fast): one thread
// per row, over the S = `splits` ranges,
//   m* = max_s m_s,  total = sum_s 2^(m_s - m*) s_s  (e^ in float64),
//   lse = m* + log(total),  shift = sum_s 2^(m_s - m*) a_s / total.
// A range with no admissible column has (m, s) = (-inf, 0) and weighs 0; a
// NaN sum anywhere gives NaN, as in the unsplit kernel.  The sums over ranges are
// compensated like the sums over tiles.  D = 0: run-time d.
// ---------------------------------------------------------------------------
template <typename T, int D, bool SHIFT>
__global__ void lse_shift_combine(const T* __restrict__ part,  // (splits, N, 2 + d)
                                  const int n, const int splits, const int d,
                                  T* __restrict__ lse_out,     // (N,)
                                  T* __restrict__ shift_out)   // (N, d)
{
  using N_ = Num<T>;
  const T ninf = N_::neg_inf();
  const int dd = D > 0 ? D : d;
  const int row = blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= n) return;
  const long long stride = (long long)n * (2 + dd);  // between two ranges of one row
  const T* __restrict__ p = part + (long long)row * (2 + dd);
  T top = ninf;
  for (int k = 0; k < splits; ++k) top = max2(top, p[k * stride]);
  if (top == ninf) {  // no range saw an admissible column (or their sums are NaN)
    T total = T(0);
    for (int k = 0; k < splits; ++k) total += p[k * stride + 1];
    lse_out[row] = total == T(0) ? ninf : total - total;  // 0 + NaN = NaN
    if constexpr (SHIFT)
      for (int q = 0; q < dd; ++q) shift_out[(long long)row * dd + q] = total == T(0) ? T(0) : total - total;
    return;
  }
  // compensated, as across tiles: up to 64 ranges of comparable sums
  T total = T(0), ct = T(0);
  for (int k = 0; k < splits; ++k) kahan_add(total, ct, N_::ex(p[k * stride] - top) * p[k * stride + 1]);
  total -= ct;
  lse_out[row] = N_::lse(top, total);
  if constexpr (SHIFT) {
    for (int q = 0; q < dd; ++q) {
      T a = T(0), ca = T(0);
      for (int k = 0; k < splits; ++k) kahan_add(a, ca, N_::ex(p[k * stride] - top) * p[k * stride + 2 + q]);
      shift_out[(long long)row * dd + q] = (a - ca) / total;
    }
  }
}

// ---------------------------------------------------------------------------
// Generic path, any d (used above the fast path's largest D).
//
// One row per thread; columns are read straight from global memory (every
// lane of a warp reads the same column, so each load is one broadcast served
// by L1/L2), so shared memory never limits d.  Distances loop over d at run
// time, S coordinates at a time: that chunk of x_i is loaded into registers
// once per register block of K columns (not once per pair and coordinate: the
// row's loads are a thread's own, not broadcasts, and would cost as much as
// the columns'); the displacement sums cover the coordinate slice [k0, k0 + ds),
// ds <= S, held in registers: gpu.py launches ceil(d/S) passes for the shift
// (each recomputes the logits; lse is written identically by every pass).
// ---------------------------------------------------------------------------
template <typename T, bool SQ, bool EXCL, bool UNIT, bool SHIFT, int K, int S, int TILE, int BLOCK>
__global__ void __launch_bounds__(BLOCK)
lse_shift_generic(const T* __restrict__ x,    // (N, d)
                  const T* __restrict__ y,    // (M, d)
                  const T* __restrict__ g,    // (M,)
                  const int n, const int m, const int d,
                  const int k0, const int ds,  // shift slice: coordinates k0 .. k0+ds-1, ds <= S
                  const T c,
                  T* __restrict__ lse_out,     // (N,)
                  T* __restrict__ shift_out)   // (N, d)
{
  static_assert(TILE % K == 0, "TILE must be a multiple of K");
  using N_ = Num<T>;
  const T ninf = N_::neg_inf();
  const int row = blockIdx.x * blockDim.x + threadIdx.x;
  const long long rc = row < n ? row : n - 1;
  const T* __restrict__ xi = x + rc * d;  // this row, (d,)

  T xs[S];  // the slice of x_i whose displacements are summed
#pragma unroll
  for (int q = 0; q < S; ++q) xs[q] = q < ds ? xi[k0 + q] : T(0);

  T mx = ninf, s = T(0), cs = T(0), acc[S], cacc[S];
#pragma unroll
  for (int q = 0; q < S; ++q) {
    acc[q] = T(0);
    cacc[q] = T(0);
  }

  for (int j0 = 0; j0 < m; j0 += TILE) {
    const int cols = (m - j0) < TILE ? (m - j0) : TILE;
    T ts = T(0), tacc[S];
#pragma unroll
    for (int q = 0; q < S; ++q) tacc[q] = T(0);
    for (int c0 = 0; c0 < cols; c0 += K) {
      T l[K];
      T un[UNIT ? K : 1];
      T d2[K];
#pragma unroll
      for (int k = 0; k < K; ++k) d2[k] = T(0);
      for (int q0 = 0; q0 < d; q0 += S) {
        T xc[S];  // x_i's coordinates q0 .. q0+S-1, once for the K columns
#pragma unroll
        for (int q = 0; q < S; ++q) xc[q] = q0 + q < d ? xi[q0 + q] : T(0);
#pragma unroll
        for (int k = 0; k < K; ++k) {
          const int j = j0 + c0 + k;
          const long long jc = j < m ? j : m - 1;  // clamped read; the column is masked below
          const T* __restrict__ yj = y + jc * d + q0;
#pragma unroll
          for (int q = 0; q < S; ++q) {
            if (q0 + q < d) {
              const T t = __ldg(yj + q) - xc[q];
              d2[k] = N_::mad(t, t, d2[k]);
            }
          }
        }
      }
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const int j = j0 + c0 + k;
        const long long jc = j < m ? j : m - 1;
        T core;
        if constexpr (SQ) {
          core = d2[k];
          if constexpr (UNIT) un[k] = N_::inv_norm(d2[k]);
        } else {
          T inv;
          N_::norm(d2[k], core, inv);
          if constexpr (UNIT) un[k] = inv;
        }
        const bool masked = (j >= m) || (EXCL && j == row);
        l[k] = masked ? ninf : N_::mad(-c, core, N_::offset(__ldg(g + jc)));
      }
      T tm = l[0];
#pragma unroll
      for (int k = 1; k < K; ++k) tm = max2(tm, l[k]);
      if (tm > mx) {
        const T f = N_::ex(mx - tm);
        s *= f;
        cs *= f;
        ts *= f;
#pragma unroll
        for (int q = 0; q < S; ++q) {
          acc[q] *= f;
          cacc[q] *= f;
          tacc[q] *= f;
        }
        mx = tm;
      }
      const T ref = mx == ninf ? T(0) : mx;
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const T p = N_::ex(l[k] - ref);
        ts += p;
        if constexpr (SHIFT) {
          T w = p;
          if constexpr (UNIT) w *= un[k];
          const int j = j0 + c0 + k;
          const long long jc = j < m ? j : m - 1;
          const T* __restrict__ yj = y + jc * d + k0;
#pragma unroll
          for (int q = 0; q < S; ++q)
            if (q < ds) tacc[q] = N_::mad(w, __ldg(yj + q) - xs[q], tacc[q]);
        }
      }
    }
    kahan_add(s, cs, ts);
#pragma unroll
    for (int q = 0; q < S; ++q) kahan_add(acc[q], cacc[q], tacc[q]);
  }

  if (row >= n) return;
  const T total = s - cs;
  const bool empty = total == T(0);  // NaN (a NaN logit) is not empty: NaN results
  lse_out[row] = empty ? ninf : N_::lse(mx, total);
  if constexpr (SHIFT) {
#pragma unroll
    for (int q = 0; q < S; ++q)
      if (q < ds) shift_out[(long long)row * d + k0 + q] = empty ? T(0) : (acc[q] - cacc[q]) / total;
  }
}

// ---------------------------------------------------------------------------
// Row sums of Euclidean distances sum_j |x_i - y_j| (N,), for the energy
// distance.  Same tiling as lse_shift_fast with one row per thread; D = 0
// selects a run-time d read from global memory (like lse_shift_generic).
// Sums blocked per tile and compensated across tiles, as above.
// ---------------------------------------------------------------------------
template <typename T, int D, int TILE, int BLOCK>
__global__ void __launch_bounds__(BLOCK)
distance_sums_kernel(const T* __restrict__ x,  // (N, d)
                     const T* __restrict__ y,  // (M, d)
                     const int n, const int m, const int d,
                     T* __restrict__ out)      // (N,)
{
  using N_ = Num<T>;
  constexpr int DS = D > 0 ? D : 1;
  constexpr int P = D > 0 ? Pad<D>::value : 1;
  __shared__ Col<T, P> tile[D > 0 ? TILE : 1];
  const int row = blockIdx.x * blockDim.x + threadIdx.x;
  const long long rc = row < n ? row : n - 1;
  T xr[DS];
  if constexpr (D > 0) {
#pragma unroll
    for (int q = 0; q < D; ++q) xr[q] = x[rc * D + q];
  }
  T s = T(0), cs = T(0);
  for (int j0 = 0; j0 < m; j0 += TILE) {
    const int cols = (m - j0) < TILE ? (m - j0) : TILE;
    T ts = T(0);
    if constexpr (D > 0) {
      __syncthreads();
      for (int e = threadIdx.x; e < cols * D; e += blockDim.x) {
        const int col = e / D;
        tile[col].v[e - col * D] = y[(long long)j0 * D + e];
      }
      __syncthreads();
      for (int col = 0; col < cols; ++col) {
        const Col<T, P> cv = tile[col];
        T d2 = T(0);
#pragma unroll
        for (int q = 0; q < D; ++q) {
          const T t = cv.v[q] - xr[q];
          d2 = N_::mad(t, t, d2);
        }
        ts += N_::root(d2);
      }
    } else {
      const T* __restrict__ xi = x + rc * d;
      for (int col = 0; col < cols; ++col) {
        const T* __restrict__ yj = y + (long long)(j0 + col) * d;
        T d2 = T(0);
        for (int q = 0; q < d; ++q) {
          const T t = __ldg(yj + q) - xi[q];
          d2 = N_::mad(t, t, d2);
        }
        ts += N_::root(d2);
      }
    }
    kahan_add(s, cs, ts);
  }
  if (row < n) out[row] = s - cs;
}

}  // namespace wgf
