/**
 * PyTorch-like display of a tensor: `tensor([[1.0000, 2.0000], ...], dtype=float32, shape=[2, 2])`, summarising
 * large tensors with "..." and aligning columns.
 */
import type { Tensor } from "./tensor.ts";

const EDGE = 3;
const LIMIT = 1000;

function fmtNumber(v: number, dtype: string, decimals: number): string {
  if (dtype === "bool") return v ? "true" : "false";
  if (dtype === "int32") return String(v);
  if (Number.isNaN(v)) return "nan";
  if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
  return v.toFixed(decimals);
}

export function formatTensor(t: Tensor): string {
  let data: ArrayLike<number>;
  try {
    data = t.dataSync();
  } catch {
    return `Tensor(shape=[${t.shape.join(", ")}], dtype=${t.dtype})`;
  }
  const summarize = data.length > LIMIT;
  let maxAbs = 0;
  for (let i = 0; i < data.length; i++)
    if (Number.isFinite(data[i])) maxAbs = Math.max(maxAbs, Math.abs(data[i]));
  const useExp = t.dtype.startsWith("float") && (maxAbs >= 1e8 || (maxAbs > 0 && maxAbs < 1e-4));
  const fmt = (v: number) => (useExp && Number.isFinite(v) ? v.toExponential(4) : fmtNumber(v, t.dtype, 4));
  let width = 0;
  for (let i = 0; i < data.length; i++) width = Math.max(width, fmt(data[i]).length);
  const strides: number[] = [];
  let acc = 1;
  for (let i = t.shape.length - 1; i >= 0; i--) {
    strides[i] = acc;
    acc *= t.shape[i];
  }
  const rec = (dim: number, off: number, indent: string): string => {
    if (dim === t.shape.length) return fmt(data[off]).padStart(width);
    const n = t.shape[dim];
    const idx: (number | null)[] = [];
    if (summarize && n > 2 * EDGE) {
      for (let i = 0; i < EDGE; i++) idx.push(i);
      idx.push(null);
      for (let i = n - EDGE; i < n; i++) idx.push(i);
    } else for (let i = 0; i < n; i++) idx.push(i);
    const parts = idx.map((i) => (i === null ? "..." : rec(dim + 1, off + i * strides[dim], `${indent} `)));
    if (dim === t.shape.length - 1) return `[${parts.join(", ")}]`;
    const sep = `,${"\n".repeat(t.shape.length - dim - 1)}${indent} `;
    return `[${parts.join(sep)}]`;
  };
  const body = rec(0, 0, "       ");
  const grad = t.requiresGrad ? ", requiresGrad=true" : "";
  return `tensor(${body}, dtype=${t.dtype}, shape=[${t.shape.join(", ")}]${grad})`;
}
