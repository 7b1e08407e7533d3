/**
 * Convolution helpers and pooling kernels of the wasm backend (AssemblyScript, float32, NCHW).
 *
 * conv2d runs as im2col + sgemm (the JS side drives it): for one image and one group, im2col lays the input
 * out as col[(c * KH + kh) * KW + kw, oh * OW + ow] = x[c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw] (0 in the
 * padding), so the convolution is W_g [Og, Cg*KH*KW] times col. col2im is its transpose (it accumulates), which
 * turns the input gradient W_g^T dy into dx. Geometry is passed as an i32 descriptor `g` in wasm memory:
 *   [C, H, W, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw]
 * Pooling follows the js backend exactly: max-pooling windows scan rows then columns, the first maximum wins
 * and a NaN wins at once; average pooling divides by kh * kw (padding counted) and sums in float64.
 */

/** Zero the floats [from, to) of the row at `d`. */
@inline
function zeroF32(d: usize, from: i32, to: i32): void {
  let i = from;
  for (; i + 4 <= to; i += 4) v128.store(d + <usize>i * 4, f32x4.splat(0));
  for (; i < to; i++) store<f32>(d + <usize>i * 4, 0);
}

/** im2col of one contiguous [C, H, W] float32 image at `px` into col [C*KH*KW, OH*OW] at `pcol`. */
export function im2col(g: usize, px: usize, pcol: usize): void {
  const C = load<i32>(g), H = load<i32>(g, 4), W = load<i32>(g, 8), KH = load<i32>(g, 12), KW = load<i32>(g, 16);
  const OH = load<i32>(g, 20), OW = load<i32>(g, 24), sh = load<i32>(g, 28), sw = load<i32>(g, 32);
  const ph = load<i32>(g, 36), pw = load<i32>(g, 40), dh = load<i32>(g, 44), dw = load<i32>(g, 48);
  let d = pcol;
  for (let c = 0; c < C; c++) {
    const plane = px + <usize>(c * H * W) * 4;
    for (let i = 0; i < KH; i++) {
      for (let j = 0; j < KW; j++) {
        const shift = j * dw - pw; // iw = ow * sw + shift
        // in-image columns: 0 <= ow*sw + shift < W
        let lo = shift >= 0 ? 0 : (-shift + sw - 1) / sw;
        let hi = W - 1 - shift < 0 ? 0 : (W - 1 - shift) / sw + 1;
        if (lo > OW) lo = OW;
        if (hi > OW) hi = OW;
        if (hi < lo) hi = lo;
        // Rows are short (OW floats): inline loops, not memory.copy / memory.fill, whose calls out of the
        // wasm code cost more than copying a few dozen floats.
        for (let oh = 0; oh < OH; oh++) {
          const ih = oh * sh - ph + i * dh;
          if (ih < 0 || ih >= H) {
            zeroF32(d, 0, OW);
          } else {
            zeroF32(d, 0, lo);
            const src = plane + <usize>(ih * W + shift) * 4;
            if (sw == 1) {
              let ow = lo;
              for (; ow + 4 <= hi; ow += 4) v128.store(d + <usize>ow * 4, v128.load(src + <usize>ow * 4));
              for (; ow < hi; ow++) store<f32>(d + <usize>ow * 4, load<f32>(src + <usize>ow * 4));
            } else {
              for (let ow = lo; ow < hi; ow++) store<f32>(d + <usize>ow * 4, load<f32>(src + <usize>(ow * sw) * 4));
            }
            zeroF32(d, hi, OW);
          }
          d += <usize>OW * 4;
        }
      }
    }
  }
}

/** col2im: dx[C, H, W] at `px` += the taps of col [C*KH*KW, OH*OW] at `pcol` (the transpose of im2col). */
export function col2im(g: usize, pcol: usize, px: usize): void {
  const C = load<i32>(g), H = load<i32>(g, 4), W = load<i32>(g, 8), KH = load<i32>(g, 12), KW = load<i32>(g, 16);
  const OH = load<i32>(g, 20), OW = load<i32>(g, 24), sh = load<i32>(g, 28), sw = load<i32>(g, 32);
  const ph = load<i32>(g, 36), pw = load<i32>(g, 40), dh = load<i32>(g, 44), dw = load<i32>(g, 48);
  let s = pcol;
  for (let c = 0; c < C; c++) {
    const plane = px + <usize>(c * H * W) * 4;
    for (let i = 0; i < KH; i++) {
      for (let j = 0; j < KW; j++) {
        const shift = j * dw - pw;
        let lo = shift >= 0 ? 0 : (-shift + sw - 1) / sw;
        let hi = W - 1 - shift < 0 ? 0 : (W - 1 - shift) / sw + 1;
        if (lo > OW) lo = OW;
        if (hi > OW) hi = OW;
        for (let oh = 0; oh < OH; oh++) {
          const ih = oh * sh - ph + i * dh;
          if (ih >= 0 && ih < H) {
            const dst = plane + <usize>(ih * W + shift) * 4;
            if (sw == 1) {
              let ow = lo;
              for (; ow + 4 <= hi; ow += 4) {
                const q = dst + <usize>ow * 4;
                v128.store(q, f32x4.add(v128.load(q), v128.load(s + <usize>ow * 4)));
              }
              for (; ow < hi; ow++) {
                const q = dst + <usize>ow * 4;
                store<f32>(q, load<f32>(q) + load<f32>(s + <usize>ow * 4));
              }
            } else {
              for (let ow = lo; ow < hi; ow++) {
                const q = dst + <usize>(ow * sw) * 4;
                store<f32>(q, load<f32>(q) + load<f32>(s + <usize>ow * 4));
              }
            }
          }
          s += <usize>OW * 4;
        }
      }
    }
  }
}

/** The max (or argmax) of one pooling window, scalar; the first maximum wins and a NaN wins at once. */
@inline
function windowMax(base: usize, W: i32, i0: i32, i1: i32, j0: i32, j1: i32, o: usize, mode: i32): void {
  let best = -1;
  let bv: f32 = -Infinity;
  for (let ih = i0; ih < i1; ih++) {
    const row = base + <usize>(ih * W) * 4;
    let j = j0;
    for (; j < j1; j++) {
      const v = load<f32>(row + <usize>j * 4);
      if (v != v) {
        best = ih * W + j;
        bv = v;
        break;
      }
      if (best < 0 || v > bv) {
        best = ih * W + j;
        bv = v;
      }
    }
    if (j < j1) break; // a NaN ended the scan
  }
  if (mode == 0) store<f32>(o, best < 0 ? -Infinity : bv);
  else store<i32>(o, best);
}

/**
 * Max pooling of contiguous float32 planes [P, H, W] at `px`. Descriptor g: [P, H, W, OH, OW, kh, kw, sh, sw,
 * ph, pw]. mode 0 writes the maxima (float32) to `po`, mode 1 the argmax flat in-plane indices (int32).
 *
 * Four horizontally adjacent windows that lie inside the image's columns are done at once in SIMD lanes with
 * compare + bitselect: on random data "greater than the best so far" is a coin flip, and the mispredicted
 * branches of a scalar scan cost several times its loads. A tap is taken while no NaN has been taken, if it
 * is greater than the best so far or a NaN (the first tap always), which keeps the scalar rule: the first
 * maximum wins and a NaN wins at once. Edge windows run the scalar scan. With sw == 2 a tap vector is the
 * even lanes of two loads, which may read one element past the window's row; the arena always holds the
 * output block after the input, so that read stays in memory and its value is discarded.
 */
export function maxPool(g: usize, px: usize, po: usize, mode: i32): void {
  const P = load<i32>(g), H = load<i32>(g, 4), W = load<i32>(g, 8), OH = load<i32>(g, 12), OW = load<i32>(g, 16);
  const kh = load<i32>(g, 20), kw = load<i32>(g, 24), sh = load<i32>(g, 28), sw = load<i32>(g, 32);
  const ph = load<i32>(g, 36), pw = load<i32>(g, 40);
  // outputs [owLo, owHi) have every column of their window inside the image
  const owLo = min(OW, (pw + sw - 1) / sw);
  const owHi = W + pw - kw < 0 ? 0 : min(OW, (W + pw - kw) / sw + 1);
  let lanes = i32x4.splat(0);
  lanes = i32x4.replace_lane(lanes, 1, sw);
  lanes = i32x4.replace_lane(lanes, 2, 2 * sw);
  lanes = i32x4.replace_lane(lanes, 3, 3 * sw);
  let o = po;
  for (let pl = 0; pl < P; pl++) {
    const base = px + <usize>(pl * H * W) * 4;
    for (let oh = 0; oh < OH; oh++) {
      const i0 = max(0, oh * sh - ph);
      const i1 = min(H, oh * sh - ph + kh);
      let ow = 0;
      if (i0 < i1 && kw > 0) {
        for (; ow < owLo; ow++, o += 4) windowMax(base, W, i0, i1, 0, min(W, ow * sw - pw + kw), o, mode);
        for (; ow + 4 <= owHi; ow += 4, o += 16) {
          const c0 = ow * sw - pw;
          let bv = f32x4.splat(0);
          let bi = i32x4.splat(0);
          for (let ih = i0; ih < i1; ih++) {
            const row = base + <usize>(ih * W) * 4;
            for (let j = 0; j < kw; j++) {
              const col = c0 + j;
              const q = row + <usize>col * 4;
              let v: v128;
              if (sw == 1) v = v128.load(q);
              else if (sw == 2) v = v128.shuffle<f32>(v128.load(q), v128.load(q, 16), 0, 2, 4, 6);
              else {
                const st = <usize>sw * 4;
                v = f32x4.splat(load<f32>(q));
                v = f32x4.replace_lane(v, 1, load<f32>(q + st));
                v = f32x4.replace_lane(v, 2, load<f32>(q + 2 * st));
                v = f32x4.replace_lane(v, 3, load<f32>(q + 3 * st));
              }
              const idx = i32x4.add(i32x4.splat(ih * W + col), lanes);
              if (ih == i0 && j == 0) {
                bv = v;
                bi = idx;
              } else {
                const take = v128.and(f32x4.eq(bv, bv), v128.or(f32x4.gt(v, bv), f32x4.ne(v, v)));
                bv = v128.bitselect(v, bv, take);
                bi = v128.bitselect(idx, bi, take);
              }
            }
          }
          v128.store(o, mode == 0 ? bv : bi);
        }
      }
      for (; ow < OW; ow++, o += 4) {
        windowMax(base, W, i0, i1, max(0, ow * sw - pw), min(W, ow * sw - pw + kw), o, mode);
      }
    }
  }
}

/** Average pooling (padding counted in the divisor kh * kw, sums in float64); descriptor as maxPool. */
export function avgPool(g: usize, px: usize, po: usize): void {
  const P = load<i32>(g), H = load<i32>(g, 4), W = load<i32>(g, 8), OH = load<i32>(g, 12), OW = load<i32>(g, 16);
  const kh = load<i32>(g, 20), kw = load<i32>(g, 24), sh = load<i32>(g, 28), sw = load<i32>(g, 32);
  const ph = load<i32>(g, 36), pw = load<i32>(g, 40);
  const div = <f64>(kh * kw);
  let o = po;
  for (let pl = 0; pl < P; pl++) {
    const base = px + <usize>(pl * H * W) * 4;
    for (let oh = 0; oh < OH; oh++) {
      const i0 = max(0, oh * sh - ph);
      const i1 = min(H, oh * sh - ph + kh);
      for (let ow = 0; ow < OW; ow++) {
        const j0 = max(0, ow * sw - pw);
        const j1 = min(W, ow * sw - pw + kw);
        let acc: f64 = 0;
        for (let ih = i0; ih < i1; ih++) {
          const row = base + <usize>(ih * W) * 4;
          for (let j = j0; j < j1; j++) acc += <f64>load<f32>(row + <usize>j * 4);
        }
        store<f32>(o, <f32>(acc / div));
        o += 4;
      }
    }
  }
}

/**
 * Transpose of avgPool: dy [P, OH, OW] float32 at `pdy`, accumulated in float64 into `acc` [P, H, W] (zeroed
 * here), then rounded into dx at `px`. Descriptor as maxPool.
 */
export function avgPoolBack(g: usize, pdy: usize, px: usize, acc: usize): void {
  const P = load<i32>(g), H = load<i32>(g, 4), W = load<i32>(g, 8), OH = load<i32>(g, 12), OW = load<i32>(g, 16);
  const kh = load<i32>(g, 20), kw = load<i32>(g, 24), sh = load<i32>(g, 28), sw = load<i32>(g, 32);
  const ph = load<i32>(g, 36), pw = load<i32>(g, 40);
  const div = <f64>(kh * kw);
  const size = P * H * W;
  memory.fill(acc, 0, <usize>size * 8);
  let s = pdy;
  for (let pl = 0; pl < P; pl++) {
    const base = acc + <usize>(pl * H * W) * 8;
    for (let oh = 0; oh < OH; oh++) {
      const i0 = max(0, oh * sh - ph);
      const i1 = min(H, oh * sh - ph + kh);
      for (let ow = 0; ow < OW; ow++) {
        const j0 = max(0, ow * sw - pw);
        const j1 = min(W, ow * sw - pw + kw);
        const gv = <f64>load<f32>(s) / div;
        for (let ih = i0; ih < i1; ih++) {
          const row = base + <usize>(ih * W) * 8;
          for (let j = j0; j < j1; j++) {
            const q = row + <usize>j * 8;
            store<f64>(q, load<f64>(q) + gv);
          }
        }
        s += 4;
      }
    }
  }
  for (let i = 0; i < size; i++) store<f32>(px + <usize>i * 4, <f32>load<f64>(acc + <usize>i * 8));
}

/** Flat in-plane index of the first maximum of rows i0..i1-1, columns j0..j1-1 (a NaN wins), -1 if empty. */
@inline
function firstMax(base: usize, W: i32, i0: i32, i1: i32, j0: i32, j1: i32): i32 {
  let best = -1;
  let bv: f32 = -Infinity;
  for (let ih = i0; ih < i1; ih++) {
    const row = base + <usize>(ih * W) * 4;
    for (let j = j0; j < j1; j++) {
      const v = load<f32>(row + <usize>j * 4);
      if (v != v) return ih * W + j;
      if (best < 0 || v > bv) {
        best = ih * W + j;
        bv = v;
      }
    }
  }
  return best;
}

/**
 * Transpose of maxPool at x (its VJP): x [P, H, W] at `px`, dy [P, OH, OW] at `pdy` (float32, contiguous) ->
 * dx [P, H, W] at `pdx`: each dy goes to its window's first maximum, every other position is 0. Disjoint
 * windows (stride >= kernel) store directly into the zeroed plane; overlapping ones sum in float64 into `acc`
 * (one plane, H * W f64) in output order and round once, as the js reference does. Descriptor as maxPool.
 */
export function maxPoolBack(g: usize, px: usize, pdy: usize, pdx: usize, acc: usize): void {
  const P = load<i32>(g), H = load<i32>(g, 4), W = load<i32>(g, 8), OH = load<i32>(g, 12), OW = load<i32>(g, 16);
  const kh = load<i32>(g, 20), kw = load<i32>(g, 24), sh = load<i32>(g, 28), sw = load<i32>(g, 32);
  const ph = load<i32>(g, 36), pw = load<i32>(g, 40);
  const disjoint = sh >= kh && sw >= kw;
  const HW = H * W;
  let s = pdy;
  for (let pl = 0; pl < P; pl++) {
    const base = px + <usize>(pl * HW) * 4;
    const dx = pdx + <usize>(pl * HW) * 4;
    if (disjoint) memory.fill(dx, 0, <usize>HW * 4);
    else memory.fill(acc, 0, <usize>HW * 8);
    for (let oh = 0; oh < OH; oh++) {
      const i0 = max(0, oh * sh - ph);
      const i1 = min(H, oh * sh - ph + kh);
      for (let ow = 0; ow < OW; ow++) {
        const j0 = max(0, ow * sw - pw);
        const j1 = min(W, ow * sw - pw + kw);
        const best = firstMax(base, W, i0, i1, j0, j1);
        if (best >= 0) {
          // + 0 turns -0 into +0, like the reference's float64 sum that starts from +0
          if (disjoint) store<f32>(dx + <usize>best * 4, load<f32>(s) + 0);
          else {
            const q = acc + <usize>best * 8;
            store<f64>(q, load<f64>(q) + <f64>load<f32>(s));
          }
        }
        s += 4;
      }
    }
    if (!disjoint) for (let i = 0; i < HW; i++) store<f32>(dx + <usize>i * 4, <f32>load<f64>(acc + <usize>i * 8));
  }
}
