/**
 * The strided odometer shared by every elementwise kernel of the wasm backend (AssemblyScript).
 *
 * The JS side coalesces the operands' axes (drops size-1 axes, merges axes that are contiguous in every
 * operand) and writes a descriptor of i32s into wasm memory: shape[nd], then the byte strides of up to four
 * operands, stride0[nd] stride1[nd] stride2[nd] stride3[nd]. `walk` visits every row along the innermost axis
 * and hands it to a row function (the generic parameter R, an "op object" whose inlined method `row` does the
 * work), so all stride handling lives here and the row functions only see (count, pointer, byte stride).
 * Pointers move by byte strides that may be negative or zero: u32 arithmetic wraps, which is what we want.
 */

/** Odometer counters (one i32 per outer axis); the JS side never passes more than MAX_DIMS axes. */
const IDX: usize = memory.data(4 * 64, 16);

/** Largest rank `walk` accepts (after coalescing). */
export const MAX_DIMS: i32 = 64;

/**
 * Visit the rows of an nd-dimensional iteration space (nd = 0 is a single element). The row function gets
 * (op, count, p0, s0, p1, s1, p2, s2, p3, s3): operand pointers at the row start and their innermost byte
 * strides. Unused operands may be passed as 0 with zero strides.
 */
@inline
export function walk<R>(
  r: R,
  op: i32,
  nd: i32,
  args: usize,
  p0: usize,
  p1: usize,
  p2: usize,
  p3: usize,
): void {
  if (nd == 0) {
    r.row(op, 1, p0, 0, p1, 0, p2, 0, p3, 0);
    return;
  }
  const nb = <usize>nd << 2;
  const sh = args;
  const t0 = sh + nb;
  const t1 = t0 + nb;
  const t2 = t1 + nb;
  const t3 = t2 + nb;
  const last = nd - 1;
  const lo = <usize>last << 2;
  const n = load<i32>(sh + lo);
  const a0 = load<i32>(t0 + lo);
  const a1 = load<i32>(t1 + lo);
  const a2 = load<i32>(t2 + lo);
  const a3 = load<i32>(t3 + lo);
  for (let i = 0; i < last; i++) store<i32>(IDX + (<usize>i << 2), 0);
  while (true) {
    r.row(op, n, p0, a0, p1, a1, p2, a2, p3, a3);
    let ax = last - 1;
    for (; ax >= 0; ax--) {
      const o = <usize>ax << 2;
      const d = load<i32>(sh + o);
      const c = load<i32>(IDX + o) + 1;
      if (c < d) {
        store<i32>(IDX + o, c);
        p0 += <usize>load<i32>(t0 + o);
        p1 += <usize>load<i32>(t1 + o);
        p2 += <usize>load<i32>(t2 + o);
        p3 += <usize>load<i32>(t3 + o);
        break;
      }
      // wrap this axis back to 0 and carry into the next outer one
      store<i32>(IDX + o, 0);
      const back = d - 1;
      p0 -= <usize>(load<i32>(t0 + o) * back);
      p1 -= <usize>(load<i32>(t1 + o) * back);
      p2 -= <usize>(load<i32>(t2 + o) * back);
      p3 -= <usize>(load<i32>(t3 + o) * back);
    }
    if (ax < 0) return;
  }
}
