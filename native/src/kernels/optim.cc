// Fused optimizer updates: one Adam/AdamW step in place over a parameter and its moment buffers, instead of
// a dozen elementwise kernels that each allocate a parameter-sized temporary.
//
// Per element, in the parameter's own precision (float32 parameters in float32, as PyTorch computes them;
// float64 in float64), with the stored (rounded) values reused exactly where the js reference reuses them:
//   p' = p (1 - lr wd) if decoupled;  g' = (maximize ? -g : g) + (decoupled ? 0 : wd p')
//   m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2;  vmax = max(vmax, v) (AMSGrad)
//   p = p' - (lr / bc1) m / (sqrt(vmax or v) / bc2Sqrt + eps)
// float32 arithmetic: the vector division and square root are twice as wide and several times faster than in
// float64, which bounded this kernel (a 235,000-parameter MLP: 205 us per step before); the results stay within
// a few float32 ulp of the float64 reference (the conformance rows' float32 tolerance). A transposed gradient
// (a Linear weight's) is read in tiles (adam_tiled): element by element it cost 5x the contiguous update.
//
// Subnormal values are flushed to zero during the update (FTZ and DAZ in MXCSR, on every thread that runs a part of
// it, restored afterwards). As a model converges its gradients shrink and g^2, then v and m, fall below the
// smallest normal float (1.2e-38); on Intel cores each operation on a subnormal input or result takes a microcode
// assist: the update of 401,408 parameters took 2.3 ms instead of 0.26 on an Intel Xeon (Granite Rapids class),
// and the bench's MLP step, whose fixed batch drives its loss toward zero, spent up to 1.6 ms of ~3.9 in Adam. A
// flushed moment changes the parameter's update by less than lr * 1.2e-38 / eps, far below a float32 ulp of p.
#include "map.h"

namespace cr {
namespace CR_ISA_NS {
namespace {

// The constants of one step, in the compute type C.
template <class C>
struct AdamConsts {
  C decay, l2, sign, b1, b2, c1, c2, step, bc2, eps;
  explicit AdamConsts(const AdamParams& h)
      : decay((C)(h.decoupled ? 1 - h.lr * h.weight_decay : 1)),
        l2((C)(h.decoupled ? 0 : h.weight_decay)),
        sign((C)(h.maximize ? -1.0 : 1.0)),
        b1((C)h.beta1),
        b2((C)h.beta2),
        c1((C)(1 - h.beta1)),
        c2((C)(1 - h.beta2)),
        step((C)(h.lr / h.bc1)),
        bc2((C)h.bc2_sqrt),
        eps((C)h.eps) {}
};

// The common case (contiguous gradient, no AMSGrad) as a branch-free loop over restrict pointers, which the
// compiler vectorises (sqrt and division included); same arithmetic as the general loop below.
template <class T>
void adam_dense(T* __restrict ps, const T* __restrict gs, T* __restrict ms, T* __restrict vs, i64 len,
                const AdamConsts<T> k) {
  for (i64 i = 0; i < len; i++) {
    const T pi = ps[i] * k.decay;
    const T gi = k.sign * gs[i] + k.l2 * pi;
    const T mi = k.b1 * ms[i] + k.c1 * gi;
    const T vi = k.b2 * vs[i] + k.c2 * gi * gi;
    ms[i] = mi;
    vs[i] = vi;
    ps[i] = pi - (k.step * mi) / (std::sqrt(vi) / k.bc2 + k.eps);
  }
}

// A 2-d gradient whose rows are not contiguous, typically a Linear weight's gradient, which backward leaves as
// the transposed view of x^T dy: walking it along p's rows would touch a new cache line per element, so each
// block of kTileRows rows is transposed, kTileCols columns at a time, into a small contiguous buffer (reading
// g down its contiguous axis) and updated by the dense loop. 32 x 128 was the best of 16 x 256, 32 x 128 and
// 64 x 64 on the MLP's 256 x 784 weight (1.45x the contiguous update's time, against 2x for 16 x 256).
constexpr i64 kTileRows = 32, kTileCols = 128;

template <class T>
void adam_tiled(T* p, const T* gp, T* m, T* v, i64 rows, i64 cols, i64 sgr, i64 sgc, const AdamConsts<T>& k) {
  const i64 blocks = (rows + kTileRows - 1) / kTileRows;
  const i64 grain = imax<i64>(1, elem_grain(rows * cols, 16384) / (kTileRows * cols));
  par_for(blocks, grain, [&](i64 lo, i64 hi, int) {
    const FlushSubnormals ftz;
    alignas(64) T buf[kTileRows * kTileCols];
    for (i64 blk = lo; blk < hi; blk++) {
      const i64 r0 = blk * kTileRows;
      const i64 rb = imin(kTileRows, rows - r0);
      for (i64 c0 = 0; c0 < cols; c0 += kTileCols) {
        const i64 cb = imin(kTileCols, cols - c0);
        for (i64 c = 0; c < cb; c++) {
          const T* gc = gp + r0 * sgr + (c0 + c) * sgc;
          for (i64 r = 0; r < rb; r++) buf[r * kTileCols + c] = gc[r * sgr];
        }
        for (i64 r = 0; r < rb; r++) {
          const i64 o = (r0 + r) * cols + c0;
          adam_dense<T>(p + o, buf + r * kTileCols, m + o, v + o, cb, k);
        }
      }
    }
  });
}

template <class T>
void adam_typed(T* p, const View& g, T* m, T* v, T* vmax, i64 n, const AdamParams& h) {
  const AdamConsts<T> k(h);
  // g may be strided: walk it as the (only) operand of a map over p's flat index.
  i64 ost[kMaxDims];
  contiguous_strides(g.ndim, g.shape, ost);
  const i64* st[2] = {g.strides, ost};
  Iter<2> it;
  it.init(g.ndim, g.shape, st);
  if (it.size == 0) return;
  const T* gp = static_cast<const T*>(g.data) + g.offset;
  const i64 sg = it.st[0][it.nd - 1];
  if (!vmax && it.nd == 2 && sg != 1) {  // p is contiguous: its run over the two axes is rows x cols
    adam_tiled<T>(p, gp, m, v, it.shape[0], it.shape[1], it.st[0][0], sg, k);
    return;
  }
  // ~10 flops per element, two of them a division and a square root: a costly op's grain
  par_for(it.size, elem_grain(it.size, 16384), [&](i64 lo, i64 hi, int) {
    const FlushSubnormals ftz;
    it.walk(lo, hi, [&](const i64* off, i64 len) {
      const T* gs = gp + off[0];
      T* ps = p + off[1];
      T* ms = m + off[1];
      T* vs = v + off[1];
      T* xs = vmax ? vmax + off[1] : nullptr;
      if (!xs && sg == 1) {
        adam_dense<T>(ps, gs, ms, vs, len, k);
        return;
      }
      for (i64 i = 0; i < len; i++) {
        const T pi = ps[i] * k.decay;
        const T gi = k.sign * gs[i * sg] + k.l2 * pi;
        const T mi = k.b1 * ms[i] + k.c1 * gi;
        const T vi = k.b2 * vs[i] + k.c2 * gi * gi;
        ms[i] = mi;
        vs[i] = vi;
        T vu = vi;
        if (xs) {
          vu = xs[i] > vi || xs[i] != xs[i] ? xs[i] : vi;  // Math.max: NaN propagates
          if (vi != vi) vu = vi;
          xs[i] = vu;
        }
        ps[i] = pi - (k.step * mi) / (std::sqrt(vu) / k.bc2 + k.eps);
      }
    });
  });
}

}  // namespace

Err adam(const Out& p, const View& g, const Out& m, const Out& v, const Out* vmax, const AdamParams& h) {
  const i64 n = shape_size(g.ndim, g.shape);
  if (g.dtype != p.dtype || m.dtype != p.dtype || v.dtype != p.dtype || (vmax && vmax->dtype != p.dtype))
    return "adamUpdate: parameter, gradient and state must share a dtype";
  if (p.length < n || m.length < n || v.length < n || (vmax && vmax->length < n))
    return "adamUpdate: state buffers are smaller than the gradient";
  if (p.dtype == F32)
    adam_typed<float>(static_cast<float*>(p.data), g, static_cast<float*>(m.data), static_cast<float*>(v.data),
                      vmax ? static_cast<float*>(vmax->data) : nullptr, n, h);
  else if (p.dtype == F64)
    adam_typed<double>(static_cast<double*>(p.data), g, static_cast<double*>(m.data),
                       static_cast<double*>(v.data), vmax ? static_cast<double*>(vmax->data) : nullptr, n, h);
  else
    return "adamUpdate: float32 or float64 expected";
  return nullptr;
}

}  // namespace CR_ISA_NS
}  // namespace cr
