/**
 * Data movement kernels of the wasm backend (AssemblyScript): strided copy, where (select) and dtype casts.
 * All three run on the coalesced iteration space of `walk`; element sizes are 1, 4 or 8 bytes (bool, float32
 * or int32, float64). Casts follow the js backend: float -> int32 is JavaScript's ToInt32 (truncate, wrap
 * modulo 2^32, NaN -> 0), anything -> bool is x != 0 (NaN -> 1), float64 -> float32 rounds to nearest.
 */
import { toInt32 } from "./math";
import { walk } from "./walk";

/** One row of dst[i] = src[i] for T elements (memory.copy when both rows are contiguous). */
@inline
function copyRow<T>(n: i32, ps: usize, ss: i32, pd: usize, sd: i32): void {
  const es = <i32>sizeof<T>();
  if (ss == es && sd == es) {
    memory.copy(pd, ps, <usize>(n * es));
    return;
  }
  let qs = ps;
  let qd = pd;
  for (let i = 0; i < n; i++) {
    store<T>(qd, load<T>(qs));
    qs += <usize>ss;
    qd += <usize>sd;
  }
}

class Copy1 { @inline row(op: i32, n: i32, p0: usize, s0: i32, p1: usize, s1: i32, p2: usize, s2: i32, p3: usize, s3: i32): void { copyRow<u8>(n, p0, s0, p1, s1); } }
class Copy4 { @inline row(op: i32, n: i32, p0: usize, s0: i32, p1: usize, s1: i32, p2: usize, s2: i32, p3: usize, s3: i32): void { copyRow<u32>(n, p0, s0, p1, s1); } }
class Copy8 { @inline row(op: i32, n: i32, p0: usize, s0: i32, p1: usize, s1: i32, p2: usize, s2: i32, p3: usize, s3: i32): void { copyRow<u64>(n, p0, s0, p1, s1); } }

/** Strided copy of elements of `es` bytes from src to dst (operands src, dst at `args`). */
export function copy(es: i32, nd: i32, args: usize, ps: usize, pd: usize): void {
  if (es == 1) walk<Copy1>(changetype<Copy1>(0), 0, nd, args, ps, pd, 0, 0);
  else if (es == 4) walk<Copy4>(changetype<Copy4>(0), 0, nd, args, ps, pd, 0, 0);
  else walk<Copy8>(changetype<Copy8>(0), 0, nd, args, ps, pd, 0, 0);
}

/** One row of out[i] = cond[i] ? a[i] : b[i] for T elements; out contiguous. */
@inline
function whereRow<T>(n: i32, pc: usize, sc: i32, pa: usize, sa: i32, pb: usize, sb: i32, po: usize): void {
  let qc = pc;
  let qa = pa;
  let qb = pb;
  for (let i = 0; i < n; i++) {
    store<T>(po + <usize>(i * sizeof<T>()), load<u8>(qc) != 0 ? load<T>(qa) : load<T>(qb));
    qc += <usize>sc;
    qa += <usize>sa;
    qb += <usize>sb;
  }
}

class Where1 { @inline row(op: i32, n: i32, p0: usize, s0: i32, p1: usize, s1: i32, p2: usize, s2: i32, p3: usize, s3: i32): void { whereRow<u8>(n, p0, s0, p1, s1, p2, s2, p3); } }
class Where4 { @inline row(op: i32, n: i32, p0: usize, s0: i32, p1: usize, s1: i32, p2: usize, s2: i32, p3: usize, s3: i32): void { whereRow<u32>(n, p0, s0, p1, s1, p2, s2, p3); } }
class Where8 { @inline row(op: i32, n: i32, p0: usize, s0: i32, p1: usize, s1: i32, p2: usize, s2: i32, p3: usize, s3: i32): void { whereRow<u64>(n, p0, s0, p1, s1, p2, s2, p3); } }

/** out = cond ? a : b with elements of `es` bytes (operands cond, a, b, out at `args`). */
export function where(es: i32, nd: i32, args: usize, pc: usize, pa: usize, pb: usize, po: usize): void {
  if (es == 1) walk<Where1>(changetype<Where1>(0), 0, nd, args, pc, pa, pb, po);
  else if (es == 4) walk<Where4>(changetype<Where4>(0), 0, nd, args, pc, pa, pb, po);
  else walk<Where8>(changetype<Where8>(0), 0, nd, args, pc, pa, pb, po);
}

/** Element kinds: 0 f32, 1 f64, 2 i32, 3 bool (u8). */
@inline
function loadKind(kind: i32, p: usize): f64 {
  switch (kind) {
    case 0: return <f64>load<f32>(p);
    case 1: return load<f64>(p);
    case 2: return <f64>load<i32>(p);
    default: return <f64>load<u8>(p);
  }
}

/**
 * One row of a cast from kind `from` to kind `to` (code = from * 4 + to). Every source value is exact in
 * float64, so converting through float64 gives the js backend's results.
 */
function castRow(code: i32, n: i32, ps: usize, ss: i32, po: usize): void {
  const from = code >> 2;
  const to = code & 3;
  let q = ps;
  if (to == 0 && from == 1) {
    for (let i = 0; i < n; i++, q += <usize>ss) store<f32>(po + (<usize>i << 2), <f32>load<f64>(q));
  } else if (to == 0) {
    for (let i = 0; i < n; i++, q += <usize>ss) store<f32>(po + (<usize>i << 2), <f32>loadKind(from, q));
  } else if (to == 1) {
    for (let i = 0; i < n; i++, q += <usize>ss) store<f64>(po + (<usize>i << 3), loadKind(from, q));
  } else if (to == 2) {
    for (let i = 0; i < n; i++, q += <usize>ss) store<i32>(po + (<usize>i << 2), toInt32(loadKind(from, q)));
  } else {
    for (let i = 0; i < n; i++, q += <usize>ss) store<u8>(po + <usize>i, <u8>(loadKind(from, q) != 0));
  }
}

class Cast { @inline row(op: i32, n: i32, p0: usize, s0: i32, p1: usize, s1: i32, p2: usize, s2: i32, p3: usize, s3: i32): void { castRow(op, n, p0, s0, p1); } }

/** out = cast(x) from element kind `from` to `to` (operands x, out at `args`). */
export function cast(from: i32, to: i32, nd: i32, args: usize, px: usize, po: usize): void {
  walk<Cast>(changetype<Cast>(0), from * 4 + to, nd, args, px, po, 0, 0);
}

/**
 * dst [C, R] = transpose of src [R, C], both contiguous, 4-byte elements: 4 x 4 blocks transposed in
 * registers (rows read and written 16 bytes at a time), scalar at the edges. The generic strided copy moves a
 * transpose one element per strided load, which made staging a transposed weight gradient (x^T dy, for the
 * fused Adam update) cost more than the update itself.
 */
export function transpose32(R: i32, C: i32, ps: usize, pd: usize): void {
  const r4 = R & ~3;
  const c4 = C & ~3;
  const rs = <usize>C * 4; // src row stride, bytes
  const ds = <usize>R * 4; // dst row stride, bytes
  for (let r0 = 0; r0 < r4; r0 += 4) {
    const s0 = ps + <usize>r0 * rs;
    for (let c0 = 0; c0 < c4; c0 += 4) {
      const s = s0 + <usize>c0 * 4;
      const v0 = v128.load(s);
      const v1 = v128.load(s + rs);
      const v2 = v128.load(s + 2 * rs);
      const v3 = v128.load(s + 3 * rs);
      const a0 = v128.shuffle<f32>(v0, v1, 0, 4, 1, 5);
      const a1 = v128.shuffle<f32>(v0, v1, 2, 6, 3, 7);
      const a2 = v128.shuffle<f32>(v2, v3, 0, 4, 1, 5);
      const a3 = v128.shuffle<f32>(v2, v3, 2, 6, 3, 7);
      const d = pd + <usize>c0 * ds + <usize>r0 * 4;
      v128.store(d, v128.shuffle<f32>(a0, a2, 0, 1, 4, 5));
      v128.store(d + ds, v128.shuffle<f32>(a0, a2, 2, 3, 6, 7));
      v128.store(d + 2 * ds, v128.shuffle<f32>(a1, a3, 0, 1, 4, 5));
      v128.store(d + 3 * ds, v128.shuffle<f32>(a1, a3, 2, 3, 6, 7));
    }
    for (let r = r0; r < r0 + 4; r++) {
      for (let c = c4; c < C; c++) {
        store<u32>(pd + <usize>c * ds + <usize>r * 4, load<u32>(ps + <usize>r * rs + <usize>c * 4));
      }
    }
  }
  for (let r = r4; r < R; r++) {
    for (let c = 0; c < C; c++) {
      store<u32>(pd + <usize>c * ds + <usize>r * 4, load<u32>(ps + <usize>r * rs + <usize>c * 4));
    }
  }
}
