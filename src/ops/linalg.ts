/**
 * Linear algebra: matmul with NumPy semantics (1-d operands promoted, batch dims broadcast), dot, outer, and
 * einsum for one or two operands, which lowers to permute/reshape/sum and one batched `dot` primitive.
 */
import { castLow } from "../amp.ts";
import { DTypeError, ShapeError } from "../errors.ts";
import { broadcastShapes, fmtShape } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import * as X from "../prims/lax.ts";
import { prepare, resultType } from "./math.ts";
import { sum } from "./reduce.ts";
import { permute, reshape, squeeze, unsqueeze } from "./shape.ts";

function promote2(op: string, a: Tensor, b: Tensor): [Tensor, Tensor] {
  const d = resultType([a, b]);
  if (d === "bool") throw new DTypeError(`${op}: bool operands are not supported`);
  return [X.castTo(a, d), X.castTo(b, d)];
}

/**
 * Matrix product with NumPy/PyTorch semantics: [..., m, k] @ [..., k, n] -> [..., m, n], batch dims broadcast;
 * a 1-d left operand is a row vector and a 1-d right operand a column vector (their added dim is removed).
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  a = castLow(a); // float32 -> the autocast dtype while autocast is on (src/amp.ts)
  b = castLow(b);
  if (a.ndim === 0 || b.ndim === 0) {
    throw new ShapeError(
      `matmul: both operands need at least 1 dim, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`,
    );
  }
  let [x, y] = promote2("matmul", a, b);
  const vecA = x.ndim === 1;
  const vecB = y.ndim === 1;
  if (vecA) x = unsqueeze(x, 0);
  if (vecB) y = unsqueeze(y, 1);
  const k = x.shape[x.ndim - 1];
  if (y.shape[y.ndim - 2] !== k) {
    throw new ShapeError(
      `matmul: inner dimensions do not match: ${fmtShape(a.shape)} @ ${fmtShape(b.shape)} (${k} vs ${y.shape[y.ndim - 2]})`,
    );
  }
  if (x.ndim > 2 && y.ndim === 2) {
    // A batch of matrices times one matrix (a linear layer on [B, T, K] activations) is one [B T, K] @ [K, N]
    // product, as PyTorch folds it: its gradient for y is then one product over all B T rows, instead of B
    // products into a [B, K, N] temporary summed over the batch by broadcast's VJP (the bench Transformer's
    // weight gradients: 8 MB written and read again per product).
    const lead = x.shape.slice(0, -1);
    let r = reshape(X.dot(reshape(x, [-1, k]), y), [...lead, y.shape[1]]);
    if (vecB) r = squeeze(r, r.ndim - 1);
    return r;
  }
  const batch = broadcastShapes("matmul", x.shape.slice(0, -2), y.shape.slice(0, -2));
  x = X.broadcast(x, [...batch, ...x.shape.slice(-2)]);
  y = X.broadcast(y, [...batch, ...y.shape.slice(-2)]);
  let r = X.dot(x, y);
  if (vecA) r = squeeze(r, r.ndim - 2);
  if (vecB) r = squeeze(r, r.ndim - 1);
  return r;
}

/** Inner product of two 1-d tensors. */
export function dot(a: Tensor, b: Tensor): Tensor {
  if (a.ndim !== 1 || b.ndim !== 1 || a.shape[0] !== b.shape[0]) {
    throw new ShapeError(
      `dot: expected two 1-d tensors of equal length, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`,
    );
  }
  return matmul(a, b);
}

/** Outer product of two 1-d tensors. */
export function outer(a: Tensor, b: Tensor): Tensor {
  if (a.ndim !== 1 || b.ndim !== 1) {
    throw new ShapeError(
      `outer: expected two 1-d tensors, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`,
    );
  }
  const [x, y] = prepare("outer", [unsqueeze(a, 1), unsqueeze(b, 0)]);
  return x.mul(y);
}

function parseSpec(spec: string, n: number): { ins: string[]; out: string } {
  const s = spec.replace(/\s+/g, "");
  const arrow = s.indexOf("->");
  const lhs = arrow >= 0 ? s.slice(0, arrow) : s;
  const ins = lhs.split(",");
  if (ins.length !== n) throw new ShapeError(`einsum: '${spec}' names ${ins.length} operands, got ${n}`);
  for (const t of ins) {
    if (!/^[a-zA-Z]*$/.test(t))
      throw new ShapeError(`einsum: unsupported subscripts '${t}' in '${spec}' (letters only)`);
    if (new Set(t).size !== t.length)
      throw new ShapeError(`einsum: repeated index in '${t}' (diagonals) is not supported`);
  }
  let out: string;
  if (arrow >= 0) out = s.slice(arrow + 2);
  else {
    const counts = new Map<string, number>();
    for (const c of ins.join("")) counts.set(c, (counts.get(c) ?? 0) + 1);
    out = [...counts.keys()]
      .filter((c) => counts.get(c) === 1)
      .sort()
      .join("");
  }
  for (const c of out)
    if (!ins.some((t) => t.includes(c)))
      throw new ShapeError(`einsum: output index '${c}' is not in any input`);
  return { ins, out };
}

/**
 * Einstein summation for one or two operands, e.g. "ij,jk->ik", "bij,bjk->bik", "i,i->", "ij->ji", "ij->j".
 */
export function einsum(spec: string, ...ops: Tensor[]): Tensor {
  if (ops.length < 1 || ops.length > 2)
    throw new ShapeError(`einsum: supports one or two operands, got ${ops.length}`);
  const { ins, out } = parseSpec(spec, ops.length);
  const sizes = new Map<string, number>();
  ins.forEach((t, k) => {
    if (t.length !== ops[k].ndim) {
      throw new ShapeError(
        `einsum: '${t}' has ${t.length} indices but operand ${k} has shape ${fmtShape(ops[k].shape)}`,
      );
    }
    [...t].forEach((c, i) => {
      const d = ops[k].shape[i];
      const prev = sizes.get(c);
      if (prev !== undefined && prev !== d && prev !== 1 && d !== 1) {
        throw new ShapeError(`einsum: index '${c}' has sizes ${prev} and ${d}`);
      }
      sizes.set(c, prev === undefined || prev === 1 ? d : prev);
    });
  });
  // sum out indices that appear in only one operand and not in the output
  const others = (k: number) => (ops.length === 2 ? ins[1 - k] : "");
  const reduced = ops.map((t, k) => {
    const drop = [...ins[k]]
      .map((c, i) => (!out.includes(c) && !others(k).includes(c) ? i : -1))
      .filter((i) => i >= 0);
    return {
      t: drop.length > 0 ? sum(t, drop) : t,
      idx: [...ins[k]].filter((_, i) => !drop.includes(i)).join(""),
    };
  });
  if (ops.length === 1) {
    const { t, idx } = reduced[0];
    return permute(
      t,
      [...out].map((c) => idx.indexOf(c)),
    );
  }
  const [A, B] = reduced;
  const batch = [...out].filter((c) => A.idx.includes(c) && B.idx.includes(c));
  const contract = [...A.idx].filter((c) => B.idx.includes(c) && !out.includes(c));
  const freeA = [...A.idx].filter((c) => !B.idx.includes(c));
  const freeB = [...B.idx].filter((c) => !A.idx.includes(c));
  const size = (cs: string[]) => cs.reduce((p, c) => p * sizes.get(c)!, 1);
  const arrange = (t: Tensor, idx: string, order: string[]) =>
    X.broadcast(
      permute(
        t,
        order.map((c) => idx.indexOf(c)),
      ),
      order.map((c) => sizes.get(c)!),
    );
  const a = reshape(arrange(A.t, A.idx, [...batch, ...freeA, ...contract]), [
    size(batch),
    size(freeA),
    size(contract),
  ]);
  const b = reshape(arrange(B.t, B.idx, [...batch, ...contract, ...freeB]), [
    size(batch),
    size(contract),
    size(freeB),
  ]);
  const r = reshape(
    matmul(a, b),
    [...batch, ...freeA, ...freeB].map((c) => sizes.get(c)!),
  );
  const have = [...batch, ...freeA, ...freeB];
  return permute(
    r,
    [...out].map((c) => have.indexOf(c)),
  );
}
