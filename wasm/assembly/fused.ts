/**
 * The fused elementwise kernel of the wasm backend (jit's fusion; AssemblyScript): a tile interpreter. The
 * output is computed `tile` elements at a time (a multiple of 4); for each tile every instruction of the program
 * runs over the tile through the very row functions of the unary / binary kernels (elementwise.ts), reading its
 * operands from small tile buffers that stay in the L1 cache, so a chain of ops costs one pass over memory.
 *
 * Bit-identity with the unfused kernels: the float32 unary kernel evaluates exp, log, tanh, sigmoid (and the
 * exact ops) with SIMD on the first floor(L / 4) * 4 elements of a contiguous row of length L and in scalar
 * float64 on the rest and on strided rows. An unfused intermediate is one contiguous row of all n elements, and
 * tiles start at multiples of 4, so running `unRowF32` per tile splits SIMD / scalar at the same elements. An op
 * reading an input directly gets the input's own split: a stride-0 input is read with stride 0 (scalar, as the
 * unfused kernel would), an input gathered from a strided layout is marked SCALAR_ONLY by the JS side (which
 * declines the layouts whose rows would split differently, src/backend/wasm/fused.ts). Binary ops are exact in
 * both forms.
 *
 * The program arrives as a descriptor of 8 i32 per instruction (written by src/backend/wasm/fused.ts):
 *   [kind, op, a, b, flags, buf, ptr, aux]
 * kind: FLAT (an input contiguous in output order at ptr), GATHER (an input read through the strided
 * descriptor at aux from base ptr into buf), FIXED (one value at ptr, read with stride 0: a const or a
 * broadcast scalar), UNARY / BINARY (op code as in elementwise.ts, operands a and b are registers, result in
 * buf). flags: SCALAR_ONLY, OUT_DIRECT (an output register: its result goes to buf + the tile's byte offset, a
 * contiguous output, instead of a tile buffer). `cur` holds one pointer per register: where its current tile
 * is.
 */
import { binRowF32, binRowF64, unaryScalar, unRowF32, unRowF64 } from "./elementwise";
import { pow64 } from "./math";

/**
 * The scalar float64 form of unary op `op` (elementwise.ts unaryScalar), for the fused kernels generated at
 * run time (src/backend/wasm/codegen.ts), which import it for the elements the unfused kernel computes in
 * scalar (tails, strided rows, ops without a SIMD form); float32 promotes the operand and rounds the result.
 */
export function unaryF64(op: i32, x: f64): f64 {
  return unaryScalar(op, x);
}

/** pow as the binary kernel computes it (math.ts pow64), imported by the generated fused kernels. */
export function powF64(a: f64, b: f64): f64 {
  return pow64(a, b);
}

const FLAT = 0;
const GATHER = 1;
const FIXED = 2;
const UNARY = 3;
const BINARY = 4;
/** flags: evaluate a unary op in scalar float64 at every element (it reads a strided input). */
const SCALAR_ONLY = 1;
/** flags: an output register, written at buf + the tile's offset. */
const OUT_DIRECT = 2;

/**
 * Copy elements [t0, t0 + len) (output row-major order) of a strided operand into dst. The descriptor at g:
 * nd, shape[nd], byte strides[nd], then nd i32 of scratch for the index.
 */
function gather(es: i32, g: usize, src: usize, t0: i32, len: i32, dst: usize): void {
  const nd = load<i32>(g);
  const sh = g + 4;
  const st = sh + (<usize>nd << 2);
  const idx = st + (<usize>nd << 2);
  const last = nd - 1;
  // the index of element t0 and the pointer of its row's first element
  let rem = t0;
  let row = src;
  for (let ax = last; ax >= 0; ax--) {
    const o = <usize>ax << 2;
    const d = load<i32>(sh + o);
    const c = rem % d;
    rem = rem / d;
    store<i32>(idx + o, c);
    if (ax < last) row += <usize>(c * load<i32>(st + o));
  }
  const L = load<i32>(sh + (<usize>last << 2));
  const sl = load<i32>(st + (<usize>last << 2));
  let j = load<i32>(idx + (<usize>last << 2));
  let k = 0;
  while (true) {
    const run = min(len - k, L - j);
    let p = row + <usize>(j * sl);
    let q = dst + <usize>(k * es);
    if (es == 4) {
      for (let r = 0; r < run; r++) {
        store<u32>(q, load<u32>(p));
        p += <usize>sl;
        q += 4;
      }
    } else {
      for (let r = 0; r < run; r++) {
        store<u64>(q, load<u64>(p));
        p += <usize>sl;
        q += 8;
      }
    }
    k += run;
    if (k >= len) return;
    // next row: carry through the outer axes
    j = 0;
    for (let ax = last - 1; ax >= 0; ax--) {
      const o = <usize>ax << 2;
      const c = load<i32>(idx + o) + 1;
      const s = load<i32>(st + o);
      if (c < load<i32>(sh + o)) {
        store<i32>(idx + o, c);
        row += <usize>s;
        break;
      }
      store<i32>(idx + o, 0);
      row -= <usize>(s * (c - 1));
    }
  }
}

/**
 * Run a fused program over n elements: kind 0 float32, 1 float64; `ninstr` instructions described at `desc`,
 * `cur` scratch for ninstr pointers, tiles of `tile` elements (a multiple of 4); outputs as OUT_DIRECT
 * instructions.
 */
export function fused(kind: i32, ninstr: i32, desc: usize, cur: usize, n: i32, tile: i32): void {
  const es = kind == 0 ? 4 : 8;
  for (let t0 = 0; t0 < n; t0 += tile) {
    const len = min(tile, n - t0);
    const off = <usize>(t0 * es);
    for (let i = 0; i < ninstr; i++) {
      const d = desc + (<usize>i << 5);
      const k = load<i32>(d);
      const slot = cur + (<usize>i << 2);
      if (k == FLAT) {
        store<u32>(slot, load<u32>(d, 24) + <u32>off);
        continue;
      }
      if (k == FIXED) {
        store<u32>(slot, load<u32>(d, 24));
        continue;
      }
      const buf = <usize>load<u32>(d, 20);
      const dst: usize = load<i32>(d, 16) & OUT_DIRECT ? buf + off : buf;
      if (k == GATHER) {
        gather(es, <usize>load<u32>(d, 28), <usize>load<u32>(d, 24), t0, len, dst);
      } else {
        const op = load<i32>(d, 4);
        const a = load<i32>(d, 8);
        const pa = <usize>load<u32>(cur + (<usize>a << 2));
        const sa = load<i32>(desc + (<usize>a << 5)) == FIXED ? 0 : es;
        if (k == UNARY) {
          if (load<i32>(d, 16) & SCALAR_ONLY) {
            if (es == 4) {
              for (let e = 0; e < len; e++) {
                const x = <f64>load<f32>(pa + <usize>(e * sa));
                store<f32>(dst + (<usize>e << 2), <f32>unaryScalar(op, x));
              }
            } else {
              for (let e = 0; e < len; e++) {
                store<f64>(dst + (<usize>e << 3), unaryScalar(op, load<f64>(pa + <usize>(e * sa))));
              }
            }
          } else if (es == 4) {
            unRowF32(op, len, pa, sa, dst);
          } else {
            unRowF64(op, len, pa, sa, dst);
          }
        } else {
          const b = load<i32>(d, 12);
          const pb = <usize>load<u32>(cur + (<usize>b << 2));
          const sb = load<i32>(desc + (<usize>b << 5)) == FIXED ? 0 : es;
          if (es == 4) binRowF32(op, len, pa, sa, pb, sb, dst);
          else binRowF64(op, len, pa, sa, pb, sb, dst);
        }
      }
      store<u32>(slot, <u32>dst);
    }
  }
}
