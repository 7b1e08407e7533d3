/**
 * WGSL of the fused recurrent cells (Backend.lstmCell, lstmCellBackward, gruCell, gruCellBackward; the js
 * kernels in src/backend/js/rnn-cell.ts are the specification): one thread per (row, hidden unit), float32
 * arithmetic. Operands are [...B, k H] views: rows over the leading axes (any strides), the last axis strided.
 *
 * Parameters: [n H, H, lr, leadShape[lr], then per operand (offset, leadStrides[lr], lastStride)]; out0 is
 * contiguous [n, w H] (w = 2, 5, 1, 7).
 */
import { header, LINEAR_ID, MAIN } from "./wgsl.ts";

export type CellKind = "lstmCell" | "lstmCellBackward" | "gruCell" | "gruCellBackward";

/** Operand widths (in units of H) of each kernel's inputs, then of its output. */
export const CELL_WIDTHS: Record<CellKind, { ins: readonly number[]; out: number }> = {
  lstmCell: { ins: [4, 1], out: 2 },
  lstmCellBackward: { ins: [4, 1, 2], out: 5 },
  gruCell: { ins: [3, 3, 1], out: 1 },
  gruCellBackward: { ins: [3, 3, 1, 1], out: 7 },
};

const BODY: Record<CellKind, string> = {
  lstmCell: `
  let ig = f_sigmoid(x0(j));
  let f = f_sigmoid(x0(H + j));
  let gg = f_tanh(x0(2 * H + j));
  let o = f_sigmoid(x0(3 * H + j));
  let cp = f * x1(j) + ig * gg;
  out0[r * 2 * H + j] = o * f_tanh(cp);
  out0[r * 2 * H + H + j] = cp;`,
  lstmCellBackward: `
  let ig = f_sigmoid(x0(j));
  let f = f_sigmoid(x0(H + j));
  let gg = f_tanh(x0(2 * H + j));
  let o = f_sigmoid(x0(3 * H + j));
  let c0 = x1(j);
  let tc = f_tanh(f * c0 + ig * gg);
  let dh = x2(j);
  let dcp = x2(H + j) + dh * o * (1.0 - tc * tc);
  let base = r * 5 * H;
  out0[base + j] = dcp * gg * (ig * (1.0 - ig));
  out0[base + H + j] = dcp * c0 * (f * (1.0 - f));
  out0[base + 2 * H + j] = dcp * ig * (1.0 - gg * gg);
  out0[base + 3 * H + j] = dh * tc * (o * (1.0 - o));
  out0[base + 4 * H + j] = dcp * f;`,
  gruCell: `
  let rg = f_sigmoid(x0(j) + x1(j));
  let z = f_sigmoid(x0(H + j) + x1(H + j));
  let nn = f_tanh(x0(2 * H + j) + rg * x1(2 * H + j));
  out0[r * H + j] = nn + z * (x2(j) - nn);`,
  gruCellBackward: `
  let hn = x1(2 * H + j);
  let rg = f_sigmoid(x0(j) + x1(j));
  let z = f_sigmoid(x0(H + j) + x1(H + j));
  let nn = f_tanh(x0(2 * H + j) + rg * hn);
  let c = x3(j);
  let dnp = c * (1.0 - z) * (1.0 - nn * nn);
  let dzp = c * (x2(j) - nn) * (z * (1.0 - z));
  let drp = dnp * hn * (rg * (1.0 - rg));
  let base = r * 7 * H;
  out0[base + j] = drp;
  out0[base + H + j] = dzp;
  out0[base + 2 * H + j] = dnp;
  out0[base + 3 * H + j] = drp;
  out0[base + 4 * H + j] = dzp;
  out0[base + 5 * H + j] = dnp * rg;
  out0[base + 6 * H + j] = c * z;`,
};

/** The shader of one cell kernel (inputs in0.. as CELL_WIDTHS lists them). */
export function cellShader(kind: CellKind): string {
  const n = CELL_WIDTHS[kind].ins.length;
  const loaders: string[] = [];
  for (let k = 0; k < n; k++) {
    // x{k}(c): element c of this row of operand k (o{k} its row offset, s{k} its last stride)
    loaders.push(`fn x${k}(c: i32) -> f32 { return in${k}[ro[${k}] + c * rs[${k}]]; }`);
  }
  return `${header(new Array(n).fill("float32"), ["float32"])}
var<private> ro: array<i32, ${n}>;
var<private> rs: array<i32, ${n}>;
${loaders.join("\n")}
${MAIN} {
  ${LINEAR_ID}
  if (i >= P[0]) { return; }
  let H = P[1];
  let lr = P[2];
  let r = i / H;
  let j = i % H;
  for (var k = 0; k < ${n}; k++) {
    let base = 3 + lr + k * (lr + 2);
    var off = P[base];
    var rem = r;
    for (var a = lr - 1; a >= 0; a--) {
      let s = P[3 + a];
      off += (rem % s) * P[base + 1 + a];
      rem = rem / s;
    }
    ro[k] = off;
    rs[k] = P[base + 1 + lr];
  }
${BODY[kind]}
}`;
}
