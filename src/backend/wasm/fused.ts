/**
 * The wasm backend's fused elementwise kernel (`Backend.fused`): stages the inputs into the arena, describes the
 * program to the tile interpreter of wasm/assembly/fused.ts (register tile buffers assigned by liveness, consts
 * and broadcast scalars as stride-0 values, strided inputs gathered per tile, output registers written straight
 * into their staged outputs) and copies the outputs out.
 *
 * Returns false, and the backend runs the program op by op through its own kernels (fused.ts's fusedByOps,
 * the same bits), for what the interpreter does not reproduce exactly: an op outside the module's lists (atan2),
 * and a unary op with a SIMD form reading an input whose rows
 * the unfused kernel would split into SIMD and scalar parts differently from a contiguous array (contiguous
 * rows whose length is not a multiple of 4, as in a slice).
 */
import type { TypedArray } from "../../dtype.ts";
import { contiguousStrides, sizeOf } from "../../shape.ts";
import type { FusedProgram, View } from "../backend.ts";
import { checkFusedArgs, FUSED_BINARY, FUSED_CONST, FUSED_INPUT, FUSED_UNARY, fusedShape } from "../fused.ts";
import { coalesce, type Ctx, stageIn, stageOut, withScope } from "./context.ts";
import { WASM_BINARY_OPS, WASM_UNARY_OPS } from "./elementwise.ts";
import { viewAt } from "./heap.ts";

/** Instruction kinds of the interpreter's descriptor (wasm/assembly/fused.ts). */
const FLAT = 0;
const GATHER = 1;
const FIXED = 2;
const UNARY = 3;
const BINARY = 4;
const SCALAR_ONLY = 1;
/** flags: an output register, written at its buffer pointer + the tile's offset (its staged output). */
const OUT_DIRECT = 2;

/** Elements per tile (a multiple of 4): a few KiB per register buffer, so a program's tiles stay in L1. */
const TILE = 512;

/**
 * Unary op codes (positions in UNARY_OPS) with a SIMD form in the wasm unary kernel, per dtype
 * (wasm/assembly/elementwise.ts hasVecF32 / hasVec without sign): where these read an input directly, the
 * input's layout decides which elements take the SIMD form.
 */
const VEC_F32 = new Set(
  ["neg", "abs", "sqrt", "relu", "floor", "ceil", "round", "sign", "exp", "log", "sigmoid", "tanh"].map(
    (op) => WASM_UNARY_OPS.indexOf(op as (typeof WASM_UNARY_OPS)[number]),
  ),
);
const VEC_F64 = new Set(
  ["neg", "abs", "sqrt", "relu", "floor", "ceil", "round"].map((op) =>
    WASM_UNARY_OPS.indexOf(op as (typeof WASM_UNARY_OPS)[number]),
  ),
);

/** Run `prog` in wasm (see the module comment); false if it must run op by op. */
export function fused(
  c: Ctx,
  prog: FusedProgram,
  inputs: readonly View[],
  outs: readonly TypedArray[],
): boolean {
  checkFusedArgs(prog, inputs, outs);
  const code = prog.code;
  const m = code.length >> 2;
  const outputs = prog.outputs;
  for (let i = 0; i < m; i++) {
    const k = code[4 * i];
    // the module's op codes are the contract's positions up to the end of its lists
    if (k === FUSED_BINARY && code[4 * i + 1] >= WASM_BINARY_OPS.length) return false;
    if (k === FUSED_UNARY && code[4 * i + 1] >= WASM_UNARY_OPS.length) return false;
  }
  const shape = fusedShape(inputs, outs);
  const n = sizeOf(shape);
  if (n === 0) return true;
  const f32 = prog.dtype === "float32";
  const es = f32 ? 4 : 8;
  const vec = f32 ? VEC_F32 : VEC_F64;
  const outStrides = contiguousStrides(shape);
  return withScope(c, (s) => {
    // inputs: staged, classified
    const inKind: number[] = [];
    const inPtr: number[] = [];
    const inAux: number[] = [];
    const inScalarOnly: boolean[] = [];
    const inMixed: boolean[] = [];
    for (const v of inputs) {
      const X = stageIn(c, s, v);
      const g = coalesce(shape, [X.strides, outStrides]);
      if (g === null) return false;
      const nd = g.shape.length;
      const st = g.strides[0];
      inPtr.push(X.ptr);
      inScalarOnly.push(false);
      inMixed.push(false);
      if (nd === 0 || (nd === 1 && st[0] === 1)) {
        inKind.push(FLAT);
        inAux.push(0);
      } else if (st.every((x) => x === 0)) {
        inKind.push(FIXED);
        inAux.push(0);
      } else {
        inKind.push(GATHER);
        // the unfused unary kernel on this layout: rows of g.shape[nd - 1] with inner stride st[nd - 1]
        const L = g.shape[nd - 1];
        if (st[nd - 1] !== 1) inScalarOnly[inScalarOnly.length - 1] = true;
        else if (L % 4 !== 0) inMixed[inMixed.length - 1] = true;
        const gd = coalesce(shape, [X.strides])!;
        const gnd = gd.shape.length;
        const p = s.alloc(4 * (1 + 3 * gnd));
        const a = c.heap.i32;
        let q = p >> 2;
        a[q++] = gnd;
        for (let i = 0; i < gnd; i++) a[q++] = gd.shape[i];
        for (let i = 0; i < gnd; i++) a[q++] = gd.strides[0][i] * es;
        inAux.push(p);
      }
    }
    // instructions: kinds, flags, tile buffers by liveness
    const lastUse = new Int32Array(m).fill(-1);
    for (let i = 0; i < m; i++) {
      const k = code[4 * i];
      if (k >= 2) lastUse[code[4 * i + 2]] = i;
      if (k === FUSED_BINARY) lastUse[code[4 * i + 3]] = i;
    }
    const kinds = new Int32Array(m);
    const flags = new Int32Array(m);
    const buf = new Int32Array(m).fill(-1);
    const ptr = new Int32Array(m);
    const aux = new Int32Array(m);
    const free: number[] = [];
    let nbuf = 0;
    const isOut = new Uint8Array(m);
    for (const r of outputs) isOut[r] = 1;
    const constAt = s.alloc(Math.max(1, prog.consts.length) * es);
    const constView = viewAt(c.heap.buffer, prog.dtype, constAt, prog.consts.length);
    constView.set(prog.consts);
    for (let i = 0; i < m; i++) {
      const k = code[4 * i];
      const a = code[4 * i + 2];
      if (k === FUSED_INPUT) {
        kinds[i] = inKind[a];
        ptr[i] = inPtr[a];
        aux[i] = inAux[a];
      } else if (k === FUSED_CONST) {
        kinds[i] = FIXED;
        ptr[i] = constAt + a * es;
      } else {
        kinds[i] = k === FUSED_BINARY ? BINARY : UNARY;
        if (k !== FUSED_BINARY && code[4 * a] === FUSED_INPUT && vec.has(code[4 * i + 1])) {
          const src = code[4 * a + 2];
          if (inMixed[src]) return false;
          if (inScalarOnly[src]) flags[i] = SCALAR_ONLY;
        }
      }
      // operands whose last reader this is give their buffer back first (an op may write over its operand)
      if (k >= 2) {
        for (const r of k === FUSED_BINARY ? [a, code[4 * i + 3]] : [a]) {
          if (lastUse[r] === i && buf[r] >= 0 && !free.includes(buf[r])) free.push(buf[r]);
        }
      }
      if (isOut[i]) flags[i] |= OUT_DIRECT;
      else if (kinds[i] === GATHER || kinds[i] >= UNARY) buf[i] = free.pop() ?? nbuf++;
    }
    const staged = outs.map((o) => stageOut(c, s, o, n));
    const outAt = new Int32Array(m);
    outputs.forEach((r, j) => {
      outAt[r] = staged[j].ptr;
    });
    const tile = Math.min(TILE, Math.ceil(n / 4) * 4);
    const bufBase = s.alloc(Math.max(1, nbuf) * tile * es);
    const desc = s.alloc(32 * m);
    const cur = s.alloc(4 * m);
    const d = c.heap.i32;
    for (let i = 0; i < m; i++) {
      let q = (desc >> 2) + 8 * i;
      d[q++] = kinds[i];
      d[q++] = code[4 * i + 1];
      d[q++] = code[4 * i + 2];
      d[q++] = code[4 * i + 3];
      d[q++] = flags[i];
      d[q++] = isOut[i] ? outAt[i] : buf[i] >= 0 ? bufBase + buf[i] * tile * es : 0;
      d[q++] = ptr[i];
      d[q++] = aux[i];
    }
    c.k.fused(f32 ? 0 : 1, m, desc, cur, n, tile);
    for (const o of staged) o.finish();
    return true;
  });
}
