/**
 * scatterAdd of the wasm backend (AssemblyScript), the transpose of gather along an axis (see the js
 * reference, src/backend/js/indexing.ts): with operands viewed as [outer, A, inner] around the axis,
 *   out[o, idx[o, a, r], r] += src[o, a, r]      (src and idx contiguous [outer, ai, inner], out [outer, ao, inner])
 * duplicates accumulating. float32 accumulates in float64 (`acc`, size elements) and rounds once at the end,
 * like the reference; float64 and int32 (wrapping) add in place. Every index is checked first: if one is
 * outside [0, ao) nothing is written and 0 is returned (the backend then runs the reference, which decides
 * what such an index means); else 1.
 */

@inline
function indicesOk(n: i32, pidx: usize, ao: i32): bool {
  for (let k = 0; k < n; k++) if (<u32>load<i32>(pidx + (<usize>k << 2)) >= <u32>ao) return false;
  return true;
}

@inline
function scatter<T, A>(outer: i32, ai: i32, inner: i32, ao: i32, psrc: usize, pidx: usize, pacc: usize): void {
  let k = 0;
  for (let o = 0; o < outer; o++) {
    for (let a = 0; a < ai; a++) {
      for (let r = 0; r < inner; r++, k++) {
        const i = (o * ao + load<i32>(pidx + (<usize>k << 2))) * inner + r;
        const q = pacc + (<usize>i) * sizeof<A>();
        store<A>(q, load<A>(q) + <A>load<T>(psrc + (<usize>k) * sizeof<T>()));
      }
    }
  }
}

/** scatterAdd for elements of kind `kind` (0 float32, 1 float64, 2 int32); `acc`: size float64 (float32 only). */
export function scatterAdd(
  kind: i32,
  outer: i32,
  ai: i32,
  inner: i32,
  ao: i32,
  psrc: usize,
  pidx: usize,
  pout: usize,
  pacc: usize,
): i32 {
  if (!indicesOk(outer * ai * inner, pidx, ao)) return 0;
  if (kind == 0) {
    const size = outer * ao * inner;
    for (let i = 0; i < size; i++) store<f64>(pacc + (<usize>i << 3), <f64>load<f32>(pout + (<usize>i << 2)));
    scatter<f32, f64>(outer, ai, inner, ao, psrc, pidx, pacc);
    for (let i = 0; i < size; i++) store<f32>(pout + (<usize>i << 2), <f32>load<f64>(pacc + (<usize>i << 3)));
  } else if (kind == 1) {
    scatter<f64, f64>(outer, ai, inner, ao, psrc, pidx, pout);
  } else {
    scatter<i32, i32>(outer, ai, inner, ao, psrc, pidx, pout);
  }
  return 1;
}
