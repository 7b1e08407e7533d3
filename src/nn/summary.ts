/**
 * `summary`: a readable table of a model's layers, each layer's output shape and parameter count, and the
 * totals, found by running one forward pass on zeros (Keras' `model.summary()`, PyTorch's torchinfo).
 *
 * Rows come from forward pre/post hooks, so they list the modules that were actually called (through
 * `call`), in call order, indented by nesting depth; a module called twice gets two rows. Parameter counts of
 * a row are recursive (a container shows the sum of its children); totals count each parameter once.
 */
import { noGrad } from "../core/trace.ts";
import { bytesPerElement, type DType } from "../dtype.ts";
import { zeros } from "../ops/creation.ts";
import { fmtShape } from "../shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { AnyModule, HookHandle } from "./module.ts";

interface Row {
  name: string;
  label: string;
  depth: number;
  output: string;
  params: number;
}

/** Group digits by thousands: 235146 -> "235,146". */
export function formatCount(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/**
 * The number of parameter elements of a module (each shared parameter once).
 *
 * @example
 * ```ts
 * countParameters(new Linear(784, 256)); // 200960
 * ```
 */
export function countParameters(m: AnyModule, opts: { trainableOnly?: boolean } = {}): number {
  let n = 0;
  for (const p of m.parameters()) if (!opts.trainableOnly || p.requiresGrad) n += p.size;
  return n;
}

function describe(v: unknown): string {
  if (v instanceof Tensor) return fmtShape(v.shape);
  if (Array.isArray(v)) return `(${v.map(describe).join(", ")})`;
  return "-";
}

/** @internal The implementation of `Module.summary`. */
export function summarize(model: AnyModule, inputShape: readonly number[], dtype: DType): string {
  const named = model.namedModules();
  const names = new Map(named.map(([n, m]) => [m, n]));
  const modes = named.map(([, m]) => [m, m.training] as const);
  const rows: Row[] = [];
  const open: Row[] = [];
  const handles: HookHandle[] = [];
  for (const [, m] of named) {
    handles.push(
      m.registerForwardPreHook((mod) => {
        const name = names.get(mod) ?? "";
        const type = mod.constructor.name;
        // the name relative to the enclosing row: "conv1" under "blocks.0" rather than "blocks.0.conv1"
        const parent = open.length > 0 ? open[open.length - 1].name : "";
        const short = parent !== "" && name.startsWith(`${parent}.`) ? name.slice(parent.length + 1) : name;
        const row: Row = {
          name,
          label: short === "" ? type : `${short} (${type})`,
          depth: open.length,
          output: "-",
          params: countParameters(mod),
        };
        rows.push(row);
        open.push(row);
      }),
      m.registerForwardHook((_mod, _inputs, out) => {
        const row = open.pop();
        if (row !== undefined) row.output = describe(out);
      }),
    );
  }
  model.eval();
  try {
    noGrad(() => model.call(zeros(inputShape, { dtype })));
  } catch (e) {
    throw new Error(
      `summary: the forward pass of ${model.constructor.name} on zeros of shape ${fmtShape(inputShape)} (${dtype}) failed: ${(e as Error).message}`,
      { cause: e },
    );
  } finally {
    for (const h of handles) h.remove();
    for (const [m, t] of modes) m.training = t;
  }

  const table = rows.map((r) => [`${"  ".repeat(r.depth)}${r.label}`, r.output, formatCount(r.params)]);
  const header = ["Layer (type)", "Output shape", "Param #"];
  const widths = header.map((h, c) => Math.max(h.length, ...table.map((r) => r[c].length)));
  const line = (cells: string[]) =>
    `${cells[0].padEnd(widths[0])}   ${cells[1].padEnd(widths[1])}   ${cells[2].padStart(widths[2])}`;
  const rule = (ch: string) => ch.repeat(widths[0] + widths[1] + widths[2] + 6);
  const total = countParameters(model);
  const trainable = countParameters(model, { trainableOnly: true });
  let bytes = 0;
  for (const p of model.parameters()) bytes += p.size * bytesPerElement(p.dtype);
  for (const b of model.buffers()) bytes += b.size * bytesPerElement(b.dtype);
  return [
    `${model.constructor.name} summary for input ${fmtShape(inputShape)} (${dtype})`,
    rule("="),
    line(header),
    rule("="),
    ...table.map(line),
    rule("="),
    `Total params: ${formatCount(total)}`,
    `Trainable params: ${formatCount(trainable)}`,
    `Non-trainable params: ${formatCount(total - trainable)}`,
    `Parameters and buffers: ${(bytes / 1048576).toFixed(2)} MB`,
    rule("-"),
  ].join("\n");
}
