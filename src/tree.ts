/**
 * Pytrees: nested arrays and plain objects whose leaves are tensors. Transforms flatten their inputs and
 * outputs to lists of tensors, work on those, and rebuild the same structure. Anything that is not an array,
 * a plain object or a Tensor (numbers, strings, null) is kept as static structure.
 */
import { ShapeError } from "./errors.ts";
import { Tensor } from "./tensor/tensor.ts";

export type TreeDef =
  | { readonly kind: "leaf" }
  | { readonly kind: "array"; readonly children: readonly TreeDef[] }
  | { readonly kind: "object"; readonly keys: readonly string[]; readonly children: readonly TreeDef[] }
  | { readonly kind: "static"; readonly value: unknown };

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (x === null || typeof x !== "object") return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

/** Flatten a pytree into its tensor leaves (depth-first, object keys in insertion order) and its structure. */
export function treeFlatten(tree: unknown): [Tensor[], TreeDef] {
  const leaves: Tensor[] = [];
  const walk = (x: unknown): TreeDef => {
    if (x instanceof Tensor) {
      leaves.push(x);
      return { kind: "leaf" };
    }
    if (Array.isArray(x)) return { kind: "array", children: x.map(walk) };
    if (isPlainObject(x)) {
      const keys = Object.keys(x);
      return { kind: "object", keys, children: keys.map((k) => walk(x[k])) };
    }
    return { kind: "static", value: x };
  };
  const def = walk(tree);
  return [leaves, def];
}

/** Rebuild a pytree of structure `def` from leaves. */
export function treeUnflatten(def: TreeDef, leaves: readonly unknown[]): unknown {
  const at = { i: 0 };
  const r = build(def, leaves, at);
  if (at.i !== leaves.length)
    throw new Error(`internal: treeUnflatten used ${at.i} of ${leaves.length} leaves`);
  return r;
}

// a module-level function rather than a closure per call: transforms unflatten on every call (jit's hot path)
function build(d: TreeDef, leaves: readonly unknown[], at: { i: number }): unknown {
  switch (d.kind) {
    case "leaf":
      return leaves[at.i++];
    case "array": {
      const a = new Array(d.children.length);
      for (let k = 0; k < a.length; k++) a[k] = build(d.children[k], leaves, at);
      return a;
    }
    case "object": {
      const o: Record<string, unknown> = {};
      for (let k = 0; k < d.keys.length; k++) o[d.keys[k]] = build(d.children[k], leaves, at);
      return o;
    }
    case "static":
      return d.value;
  }
}

/** Map `f` over the tensor leaves of a pytree. */
export function treeMap<R>(tree: unknown, f: (t: Tensor, i: number) => R): unknown {
  const [leaves, def] = treeFlatten(tree);
  return treeUnflatten(def, leaves.map(f));
}

/** A readable description of a structure, for error messages. */
export function treeDescribe(def: TreeDef): string {
  switch (def.kind) {
    case "leaf":
      return "Tensor";
    case "array":
      return `[${def.children.map(treeDescribe).join(", ")}]`;
    case "object":
      return `{${def.keys.map((k, i) => `${k}: ${treeDescribe(def.children[i])}`).join(", ")}}`;
    case "static":
      return JSON.stringify(def.value) ?? String(def.value);
  }
}

/** Throw a ShapeError naming `op` if two structures differ. */
export function assertSameTree(op: string, what: string, a: TreeDef, b: TreeDef): void {
  const da = treeDescribe(a);
  const db = treeDescribe(b);
  if (da !== db) throw new ShapeError(`${op}: ${what} has structure ${db}, expected ${da}`);
}
