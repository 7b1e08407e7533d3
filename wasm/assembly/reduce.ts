/**
 * Reductions of the wasm backend (AssemblyScript, SIMD128).
 *
 * The JS side brings every reduction to one or more passes of a single shape: a contiguous input
 * [outer, r, inner] reduced over its middle axis into a contiguous [outer, inner]. With inner = 1 this is a
 * row reduction (SIMD across the row, then across lanes); with inner > 1 it is a column reduction that
 * combines whole rows of `inner` elements (SIMD along the row). float32 sums and products accumulate in
 * float64 (as the js backend does) in an accumulator row `acc` supplied by the caller (inner * 8 bytes);
 * max and min propagate NaN (wasm's min/max do); int32 sums and products wrap.
 */

const SUM = 0, PROD = 1, MAX = 2, MIN = 3;

@inline
function initF64(op: i32): f64 {
  return op == SUM ? 0 : op == PROD ? 1 : op == MAX ? -Infinity : Infinity;
}

@inline
function combineF64x2(op: i32, a: v128, b: v128): v128 {
  return op == SUM ? f64x2.add(a, b) : op == PROD ? f64x2.mul(a, b) : op == MAX ? f64x2.max(a, b) : f64x2.min(a, b);
}

@inline
function combineF64(op: i32, a: f64, b: f64): f64 {
  return op == SUM ? a + b : op == PROD ? a * b : op == MAX ? max<f64>(a, b) : min<f64>(a, b);
}

@inline
function combineI32x4(op: i32, a: v128, b: v128): v128 {
  return op == SUM ? i32x4.add(a, b) : op == PROD ? i32x4.mul(a, b) : op == MAX ? i32x4.max_s(a, b) : i32x4.min_s(a, b);
}

@inline
function combineI32(op: i32, a: i32, b: i32): i32 {
  return op == SUM ? a + b : op == PROD ? a * b : op == MAX ? max<i32>(a, b) : min<i32>(a, b);
}

/** Row reduction of r float32 values at p, in float64: four partial accumulators in two f64x2 registers. */
function rowF32(op: i32, p: usize, r: i32): f64 {
  const init = f64x2.splat(initF64(op));
  let a0 = init;
  let a1 = init;
  let i = 0;
  for (; i + 4 <= r; i += 4) {
    const v = v128.load(p + (<usize>i << 2));
    a0 = combineF64x2(op, a0, f64x2.promote_low_f32x4(v));
    a1 = combineF64x2(op, a1, f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)));
  }
  a0 = combineF64x2(op, a0, a1);
  let acc = combineF64(op, f64x2.extract_lane(a0, 0), f64x2.extract_lane(a0, 1));
  for (; i < r; i++) acc = combineF64(op, acc, <f64>load<f32>(p + (<usize>i << 2)));
  return acc;
}

function rowF64(op: i32, p: usize, r: i32): f64 {
  const init = f64x2.splat(initF64(op));
  let a0 = init;
  let a1 = init;
  let i = 0;
  for (; i + 4 <= r; i += 4) {
    a0 = combineF64x2(op, a0, v128.load(p + (<usize>i << 3)));
    a1 = combineF64x2(op, a1, v128.load(p + (<usize>i << 3), 16));
  }
  a0 = combineF64x2(op, a0, a1);
  let acc = combineF64(op, f64x2.extract_lane(a0, 0), f64x2.extract_lane(a0, 1));
  for (; i < r; i++) acc = combineF64(op, acc, load<f64>(p + (<usize>i << 3)));
  return acc;
}

function rowI32(op: i32, p: usize, r: i32): i32 {
  const init: i32 = op == SUM ? 0 : op == PROD ? 1 : op == MAX ? i32.MIN_VALUE : i32.MAX_VALUE;
  let a = i32x4.splat(init);
  let i = 0;
  for (; i + 4 <= r; i += 4) a = combineI32x4(op, a, v128.load(p + (<usize>i << 2)));
  let acc = combineI32(op, combineI32(op, i32x4.extract_lane(a, 0), i32x4.extract_lane(a, 1)), combineI32(op, i32x4.extract_lane(a, 2), i32x4.extract_lane(a, 3)));
  for (; i < r; i++) acc = combineI32(op, acc, load<i32>(p + (<usize>i << 2)));
  return acc;
}

/**
 * Row max / min of r float32 values: pmax / pmin are single instructions but drop NaN, so NaN is tracked
 * in a separate mask (max and min propagate NaN).
 */
function rowExtremeF32(isMax: bool, p: usize, r: i32): f64 {
  let a = f32x4.splat(isMax ? -Infinity : Infinity);
  let nan = i32x4.splat(0);
  let i = 0;
  for (; i + 4 <= r; i += 4) {
    const v = v128.load(p + (<usize>i << 2));
    nan = v128.or(nan, f32x4.ne(v, v));
    a = isMax ? f32x4.pmax(a, v) : f32x4.pmin(a, v);
  }
  if (v128.any_true(nan)) return NaN;
  const l0 = <f64>f32x4.extract_lane(a, 0);
  const l1 = <f64>f32x4.extract_lane(a, 1);
  const l2 = <f64>f32x4.extract_lane(a, 2);
  const l3 = <f64>f32x4.extract_lane(a, 3);
  let acc = isMax ? max<f64>(max<f64>(l0, l1), max<f64>(l2, l3)) : min<f64>(min<f64>(l0, l1), min<f64>(l2, l3));
  for (; i < r; i++) {
    const v = <f64>load<f32>(p + (<usize>i << 2));
    acc = isMax ? max<f64>(acc, v) : min<f64>(acc, v);
  }
  return acc;
}

/**
 * Reduce a contiguous float32 [outer, r, inner] over its middle axis into float32 [outer, inner]; `acc` is
 * scratch for inner float64 values.
 */
export function reduceF32(op: i32, outer: i32, r: i32, inner: i32, px: usize, po: usize, acc: usize): void {
  if (inner == 1) {
    for (let o = 0; o < outer; o++) {
      const row = px + <usize>(o * r) * 4;
      const v = op == MAX || op == MIN ? rowExtremeF32(op == MAX, row, r) : rowF32(op, row, r);
      store<f32>(po + (<usize>o << 2), <f32>v);
    }
    return;
  }
  const init = f64x2.splat(initF64(op));
  for (let o = 0; o < outer; o++) {
    let j = 0;
    for (; j + 2 <= inner; j += 2) v128.store(acc + (<usize>j << 3), init);
    for (; j < inner; j++) store<f64>(acc + (<usize>j << 3), initF64(op));
    for (let t = 0; t < r; t++) {
      const row = px + (<usize>(o * r + t) * <usize>inner) * 4;
      let j = 0;
      for (; j + 4 <= inner; j += 4) {
        const v = v128.load(row + (<usize>j << 2));
        const q = acc + (<usize>j << 3);
        v128.store(q, combineF64x2(op, v128.load(q), f64x2.promote_low_f32x4(v)));
        v128.store(q, combineF64x2(op, v128.load(q, 16), f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1))), 16);
      }
      for (; j < inner; j++) {
        const q = acc + (<usize>j << 3);
        store<f64>(q, combineF64(op, load<f64>(q), <f64>load<f32>(row + (<usize>j << 2))));
      }
    }
    const out = po + (<usize>(o * inner) << 2);
    for (let j = 0; j < inner; j++) store<f32>(out + (<usize>j << 2), <f32>load<f64>(acc + (<usize>j << 3)));
  }
}

/** Reduce a contiguous float64 [outer, r, inner] over its middle axis into [outer, inner]. */
export function reduceF64(op: i32, outer: i32, r: i32, inner: i32, px: usize, po: usize): void {
  if (inner == 1) {
    for (let o = 0; o < outer; o++) store<f64>(po + (<usize>o << 3), rowF64(op, px + <usize>(o * r) * 8, r));
    return;
  }
  const init = f64x2.splat(initF64(op));
  for (let o = 0; o < outer; o++) {
    const out = po + <usize>(o * inner) * 8;
    let j = 0;
    for (; j + 2 <= inner; j += 2) v128.store(out + (<usize>j << 3), init);
    for (; j < inner; j++) store<f64>(out + (<usize>j << 3), initF64(op));
    for (let t = 0; t < r; t++) {
      const row = px + (<usize>(o * r + t) * <usize>inner) * 8;
      let j = 0;
      for (; j + 2 <= inner; j += 2) {
        const q = out + (<usize>j << 3);
        v128.store(q, combineF64x2(op, v128.load(q), v128.load(row + (<usize>j << 3))));
      }
      for (; j < inner; j++) {
        const q = out + (<usize>j << 3);
        store<f64>(q, combineF64(op, load<f64>(q), load<f64>(row + (<usize>j << 3))));
      }
    }
  }
}

/** Reduce a contiguous int32 [outer, r, inner] over its middle axis into [outer, inner] (wrapping). */
export function reduceI32(op: i32, outer: i32, r: i32, inner: i32, px: usize, po: usize): void {
  if (inner == 1) {
    for (let o = 0; o < outer; o++) store<i32>(po + (<usize>o << 2), rowI32(op, px + <usize>(o * r) * 4, r));
    return;
  }
  const init: i32 = op == SUM ? 0 : op == PROD ? 1 : op == MAX ? i32.MIN_VALUE : i32.MAX_VALUE;
  const initV = i32x4.splat(init);
  for (let o = 0; o < outer; o++) {
    const out = po + <usize>(o * inner) * 4;
    let j = 0;
    for (; j + 4 <= inner; j += 4) v128.store(out + (<usize>j << 2), initV);
    for (; j < inner; j++) store<i32>(out + (<usize>j << 2), init);
    for (let t = 0; t < r; t++) {
      const row = px + (<usize>(o * r + t) * <usize>inner) * 4;
      let j = 0;
      for (; j + 4 <= inner; j += 4) {
        const q = out + (<usize>j << 2);
        v128.store(q, combineI32x4(op, v128.load(q), v128.load(row + (<usize>j << 2))));
      }
      for (; j < inner; j++) {
        const q = out + (<usize>j << 2);
        store<i32>(q, combineI32(op, load<i32>(q), load<i32>(row + (<usize>j << 2))));
      }
    }
  }
}
