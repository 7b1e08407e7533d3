/**
 * WGSL of jit's fused elementwise kernel (Backend.fused): one compute shader per program structure (its
 * `key`; the const values are parameters), one thread per element, every register an f32 `let` computed by
 * the same expression the unary / binary kernels use (`unaryExpr`, `binaryExpr`), so a register holds what the
 * unfused kernel would have stored. Several outputs leave the same pass.
 *
 * Bindings: the inputs in0.. (strided views broadcast to the output shape), the outputs out0.. (contiguous),
 * P. Parameters: [n, rank, shape[rank], per input (offset, strides[rank])], then the consts as f32 bits, then
 * a 0 word (the opaque identity between registers).
 */
import type { FusedProgram } from "../backend.ts";
import { binaryExpr, header, LINEAR_ID, MAIN, stridedOffsets, unaryExpr } from "./wgsl.ts";

/** The shader of `prog` (float32). */
export function fusedShader(prog: FusedProgram): string {
  const k = prog.numInputs;
  const lines: string[] = [];
  let ci = 0;
  prog.instrs.forEach((ins, i) => {
    let e: string | null;
    if (ins.kind === "input") e = `in${ins.index}[o${ins.index}]`;
    else if (ins.kind === "const") e = `bitcast<f32>(P[cbase + ${ci++}])`;
    else if (ins.kind === "unary") e = unaryExpr(ins.op, "float32", `r${ins.a}`);
    else e = binaryExpr(ins.op, "float32", `r${ins.a}`, `r${ins.b}`);
    if (e === null) throw new Error(`internal: fused: no WGSL form for instruction ${i}`);
    // an op's result passes an opaque integer identity: the compiler can neither contract it into the next
    // op (fma) nor simplify across ops (x * (y / x) to y), so each register holds what the op's own kernel
    // would have stored
    lines.push(
      ins.kind === "unary" || ins.kind === "binary"
        ? `let r${i}: f32 = opq(${e});`
        : `let r${i}: f32 = ${e};`,
    );
  });
  prog.outputs.forEach((r, j) => {
    lines.push(`out${j}[i] = r${r};`);
  });
  const outs = Array.from(prog.outputs, () => "float32" as const);
  return `${header(new Array(k).fill("float32"), outs)}
var<private> zmask: u32;
fn opq(x: f32) -> f32 { return bitcast<f32>(bitcast<u32>(x) ^ zmask); }
${MAIN} {
  ${LINEAR_ID}
  if (i >= P[0]) { return; }
  let rank = P[1];
  let cbase = 2 + rank + ${k} * (rank + 1);
  zmask = bitcast<u32>(P[cbase + ${prog.consts.length}]);
${stridedOffsets(k)}
  ${lines.join("\n  ")}
}`;
}
