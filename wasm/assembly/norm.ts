/**
 * Layer normalisation over the last axis on float32 rows (AssemblyScript): Backend.layerNorm, its VJP and the
 * affine kernels, as specified by the js reference (src/backend/js/norm.ts), with the contract's float32
 * latitude: the row sums in float64 (two lanes of f64x2 per pair of float32 lanes), the mean first and then the
 * squared deviations, and the per-element arithmetic in float64 rounded once, as js does. Rows are contiguous,
 * r elements each; w, b (r elements) and g (x's size) contiguous too (the JS side stages them).
 *
 *   mode 0  layerNorm                out = (x - mean) rstd
 *   mode 1  layerNormAffine          out = (x - mean) rstd w + b
 *   mode 2  layerNormBackward        out = rstd (gw - mean(gw) - xhat mean(xhat gw)), gw = g
 *   mode 3  layerNormScaledBackward  the same with gw = g w
 *   mode 4  layerNormAffineGrads     out[0 .. r) = sum over rows of g xhat, out[r .. 2r) = sum of g, summed in
 *                                    float64 in row order in `acc` (2 r float64, scratch), then rounded
 */

/** Mean and rstd of the last row (module globals: a kernel allocates nothing). */
let gMean: f64 = 0;
let gRstd: f64 = 0;

/** Lanes 0, 1 and 2, 3 of a float32 vector as two float64 pairs. */
@inline
function lowPair(v: v128): v128 {
  return f64x2.promote_low_f32x4(v);
}
@inline
function highPair(v: v128): v128 {
  return f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1));
}

/** Two float64 pairs rounded into one float32 vector (a's lanes first). */
@inline
function demote2(a: v128, b: v128): v128 {
  return i32x4.shuffle(f32x4.demote_f64x2_zero(a), f32x4.demote_f64x2_zero(b), 0, 1, 4, 5);
}

/** Lanes 0, 1 (hi false) or 2, 3 (hi true) of g at byte k, times w's (mode 3), as float64. */
@inline
function gwPair(mode: i32, gv: v128, pw: usize, k: usize, hi: bool): v128 {
  const g = hi ? highPair(gv) : lowPair(gv);
  if (mode != 3) return g;
  const wv = v128.load(pw + k);
  return f64x2.mul(g, hi ? highPair(wv) : lowPair(wv));
}

/** The row's mean and 1 / sqrt(biased variance + eps) into gMean, gRstd. */
@inline
function rowStats(p: usize, r: i32, eps: f64): void {
  let s0 = f64x2.splat(0);
  let s1 = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= r; i += 4) {
    const v = v128.load(p + (<usize>i << 2));
    s0 = f64x2.add(s0, lowPair(v));
    s1 = f64x2.add(s1, highPair(v));
  }
  let s = f64x2.extract_lane(s0, 0) + f64x2.extract_lane(s1, 0) + (f64x2.extract_lane(s0, 1) + f64x2.extract_lane(s1, 1));
  for (; i < r; i++) s += <f64>load<f32>(p + (<usize>i << 2));
  const mean = s / <f64>r;
  const m = f64x2.splat(mean);
  let q0 = f64x2.splat(0);
  let q1 = f64x2.splat(0);
  i = 0;
  for (; i + 4 <= r; i += 4) {
    const v = v128.load(p + (<usize>i << 2));
    const d0 = f64x2.sub(lowPair(v), m);
    const d1 = f64x2.sub(highPair(v), m);
    q0 = f64x2.add(q0, f64x2.mul(d0, d0));
    q1 = f64x2.add(q1, f64x2.mul(d1, d1));
  }
  let q = f64x2.extract_lane(q0, 0) + f64x2.extract_lane(q1, 0) + (f64x2.extract_lane(q0, 1) + f64x2.extract_lane(q1, 1));
  for (; i < r; i++) {
    const d = <f64>load<f32>(p + (<usize>i << 2)) - mean;
    q += d * d;
  }
  gMean = mean;
  gRstd = 1 / Math.sqrt(q / <f64>r + eps);
}

/** See the module comment. n rows of r; pointers to contiguous float32 arrays (0 where a mode reads none). */
export function layerNormF32(
  mode: i32,
  n: i32,
  r: i32,
  px: usize,
  pg: usize,
  pw: usize,
  pb: usize,
  po: usize,
  eps: f64,
  acc: usize,
): void {
  if (mode == 4) memory.fill(acc, 0, <usize>(2 * r) << 3);
  for (let row = 0; row < n; row++) {
    const off = <usize>row * <usize>r << 2;
    const x = px + off;
    rowStats(x, r, eps);
    const m = f64x2.splat(gMean);
    const rs = f64x2.splat(gRstd);
    if (mode == 0 || mode == 1) {
      const o = po + off;
      let i = 0;
      for (; i + 4 <= r; i += 4) {
        const k = <usize>i << 2;
        const v = v128.load(x + k);
        let a = f64x2.mul(f64x2.sub(lowPair(v), m), rs);
        let b = f64x2.mul(f64x2.sub(highPair(v), m), rs);
        if (mode == 1) {
          const wv = v128.load(pw + k);
          const bv = v128.load(pb + k);
          a = f64x2.add(f64x2.mul(a, lowPair(wv)), lowPair(bv));
          b = f64x2.add(f64x2.mul(b, highPair(wv)), highPair(bv));
        }
        v128.store(o + k, demote2(a, b));
      }
      for (; i < r; i++) {
        const k = <usize>i << 2;
        let h = (<f64>load<f32>(x + k) - gMean) * gRstd;
        if (mode == 1) h = h * <f64>load<f32>(pw + k) + <f64>load<f32>(pb + k);
        store<f32>(o + k, <f32>h);
      }
    } else if (mode == 2 || mode == 3) {
      // sums of gw and gw xhat, then the output from them (xhat and gw recomputed: no row buffer)
      const g = pg + off;
      let sg0 = f64x2.splat(0);
      let sg1 = f64x2.splat(0);
      let sx0 = f64x2.splat(0);
      let sx1 = f64x2.splat(0);
      let i = 0;
      for (; i + 4 <= r; i += 4) {
        const k = <usize>i << 2;
        const v = v128.load(x + k);
        const gv = v128.load(g + k);
        const g0 = gwPair(mode, gv, pw, k, false);
        const g1 = gwPair(mode, gv, pw, k, true);
        sg0 = f64x2.add(sg0, g0);
        sg1 = f64x2.add(sg1, g1);
        sx0 = f64x2.add(sx0, f64x2.mul(g0, f64x2.mul(f64x2.sub(lowPair(v), m), rs)));
        sx1 = f64x2.add(sx1, f64x2.mul(g1, f64x2.mul(f64x2.sub(highPair(v), m), rs)));
      }
      let sg = f64x2.extract_lane(sg0, 0) + f64x2.extract_lane(sg1, 0) + (f64x2.extract_lane(sg0, 1) + f64x2.extract_lane(sg1, 1));
      let sgx = f64x2.extract_lane(sx0, 0) + f64x2.extract_lane(sx1, 0) + (f64x2.extract_lane(sx0, 1) + f64x2.extract_lane(sx1, 1));
      for (let j = i; j < r; j++) {
        const k = <usize>j << 2;
        let gw = <f64>load<f32>(g + k);
        if (mode == 3) gw *= <f64>load<f32>(pw + k);
        sg += gw;
        sgx += gw * ((<f64>load<f32>(x + k) - gMean) * gRstd);
      }
      const mg = f64x2.splat(sg / <f64>r);
      const mgx = f64x2.splat(sgx / <f64>r);
      const o = po + off;
      i = 0;
      for (; i + 4 <= r; i += 4) {
        const k = <usize>i << 2;
        const v = v128.load(x + k);
        const gv = v128.load(g + k);
        const g0 = gwPair(mode, gv, pw, k, false);
        const g1 = gwPair(mode, gv, pw, k, true);
        const h0 = f64x2.mul(f64x2.sub(lowPair(v), m), rs);
        const h1 = f64x2.mul(f64x2.sub(highPair(v), m), rs);
        const a = f64x2.mul(rs, f64x2.sub(f64x2.sub(g0, mg), f64x2.mul(h0, mgx)));
        const b = f64x2.mul(rs, f64x2.sub(f64x2.sub(g1, mg), f64x2.mul(h1, mgx)));
        v128.store(o + k, demote2(a, b));
      }
      const mgs = sg / <f64>r;
      const mgxs = sgx / <f64>r;
      for (; i < r; i++) {
        const k = <usize>i << 2;
        let gw = <f64>load<f32>(g + k);
        if (mode == 3) gw *= <f64>load<f32>(pw + k);
        const h = (<f64>load<f32>(x + k) - gMean) * gRstd;
        store<f32>(o + k, <f32>(gRstd * (gw - mgs - h * mgxs)));
      }
    } else {
      // mode 4: acc[i] += g xhat, acc[r + i] += g
      const g = pg + off;
      const ab = acc + (<usize>r << 3);
      let i = 0;
      for (; i + 4 <= r; i += 4) {
        const k = <usize>i << 2;
        const k8 = <usize>i << 3;
        const v = v128.load(x + k);
        const gv = v128.load(g + k);
        const g0 = lowPair(gv);
        const g1 = highPair(gv);
        const h0 = f64x2.mul(f64x2.sub(lowPair(v), m), rs);
        const h1 = f64x2.mul(f64x2.sub(highPair(v), m), rs);
        v128.store(acc + k8, f64x2.add(v128.load(acc + k8), f64x2.mul(g0, h0)));
        v128.store(acc + k8 + 16, f64x2.add(v128.load(acc + k8 + 16), f64x2.mul(g1, h1)));
        v128.store(ab + k8, f64x2.add(v128.load(ab + k8), g0));
        v128.store(ab + k8 + 16, f64x2.add(v128.load(ab + k8 + 16), g1));
      }
      for (; i < r; i++) {
        const k = <usize>i << 2;
        const k8 = <usize>i << 3;
        const gv = <f64>load<f32>(g + k);
        store<f64>(acc + k8, load<f64>(acc + k8) + gv * ((<f64>load<f32>(x + k) - gMean) * gRstd));
        store<f64>(ab + k8, load<f64>(ab + k8) + gv);
      }
    }
  }
  if (mode == 4) for (let i = 0; i < 2 * r; i++) store<f32>(po + (<usize>i << 2), <f32>load<f64>(acc + (<usize>i << 3)));
}
