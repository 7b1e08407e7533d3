/**
 * Containers: `Sequential` (modules applied in order), `ModuleList` (a list of modules whose use the parent
 * decides), `ModuleDict` (modules by key) and `ParameterList`. Children of the lists are named by position,
 * "0", "1", ..., so a Sequential's parameters are "0.weight", "0.bias", "2.weight", ... as in PyTorch.
 */
import { noGrad } from "../core/trace.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { Activation } from "../ops/nn.ts";
import { ReLU, Sigmoid, Tanh } from "./activation.ts";
import { Conv2d } from "./conv.ts";
import { Linear } from "./linear.ts";
import { MaxPool2d } from "./pool.ts";
import { type AnyModule, Module, parameter } from "./module.ts";

/** Activation modules that fuse into a preceding Linear or Conv2d (exact classes: a subclass may differ). */
const FUSABLE = new Map<unknown, Activation>([
  [ReLU, "relu"],
  [Tanh, "tanh"],
  [Sigmoid, "sigmoid"],
]);

/**
 * The activation to fuse when layer `m` is followed by activation module `next`: a Linear or Conv2d (exact
 * class) then ReLU, Tanh or Sigmoid, neither with hooks. The pair then runs as one fused bias + activation
 * kernel, forward and backward; results are identical, one temporary and one pass over memory fewer.
 */
function fusedActivation(m: AnyModule, next: AnyModule | undefined): Activation | undefined {
  const layer: unknown = m.constructor;
  if (next === undefined || (layer !== Linear && layer !== Conv2d)) return undefined;
  const act = FUSABLE.get(next.constructor);
  return act !== undefined && !m._hasHooks() && !next._hasHooks() ? act : undefined;
}

/**
 * @internal Sequential's reordering of Conv2d, ReLU, MaxPool2d (see `poolsBeforeRelu`); false runs the three as
 * written, for benchmarks that compare the two.
 */
export const sequentialOpts = { poolBeforeRelu: true };

/**
 * Whether `m`, `a`, `p` are Conv2d, ReLU and an unpadded MaxPool2d (exact classes, no hooks). Sequential then
 * runs them as relu(maxPool(conv(x))): relu is monotone, so the values are those of maxPool(relu(conv(x))), and
 * so are the gradients (where a window's maximum is positive, the first maximum of relu(z) is the first maximum
 * of z; elsewhere relu' is 0 at both), while relu and its backward run over the pooled tensor (a quarter of the
 * elements for a 2x2 pool) and the convolution's backward takes the pool's gradient as it is. Padding would
 * let a window see only padding (-Infinity, which relu would turn into 0), so padded pools are left alone.
 */
function poolsBeforeRelu(m: AnyModule, a: AnyModule | undefined, p: AnyModule | undefined): boolean {
  if (!sequentialOpts.poolBeforeRelu || a === undefined || p === undefined) return false;
  const classes: unknown[] = [m.constructor, a.constructor, p.constructor];
  if (classes[0] !== Conv2d || classes[1] !== ReLU || classes[2] !== MaxPool2d) return false;
  if (m._hasHooks() || a._hasHooks() || p._hasHooks()) return false;
  const pad = (p as MaxPool2d).opts.padding ?? 0;
  return typeof pad === "number" ? pad === 0 : pad[0] === 0 && pad[1] === 0;
}

/** A module taking and returning one tensor: what a Sequential chains. */
export type TensorModule = Module<[Tensor], Tensor>;

/**
 * Applies its modules in order: `seq.call(x)` is `m_n(...m_1(x))`.
 *
 * @example
 * ```ts
 * const mlp = new Sequential(new Linear(784, 256), new ReLU(), new Linear(256, 10));
 * mlp.call(randn([32, 784])); // [32, 10]
 * mlp.namedParameters().map(([n]) => n); // ["0.weight", "0.bias", "2.weight", "2.bias"]
 * ```
 */
export class Sequential extends Module implements Iterable<TensorModule> {
  readonly #mods: TensorModule[];

  constructor(...modules: TensorModule[]) {
    super();
    for (const [i, m] of modules.entries()) {
      if (!(m instanceof Module)) throw new TypeError(`Sequential: argument ${i} is not a Module`);
    }
    this.#mods = [...modules];
  }

  forward(x: Tensor): Tensor {
    const mods = this.#mods;
    let y = x;
    for (let i = 0; i < mods.length; i++) {
      const m = mods[i];
      if (poolsBeforeRelu(m, mods[i + 1], mods[i + 2])) {
        y = mods[i + 1].call(mods[i + 2].call(m.call(y)));
        i += 2;
        continue;
      }
      const act = fusedActivation(m, mods[i + 1]);
      if (act === undefined) {
        y = m.call(y);
      } else {
        y = (m as Linear | Conv2d)._forwardActivated(y, act);
        i++;
      }
    }
    return y;
  }

  override namedChildren(): [string, AnyModule][] {
    return this.#mods.map((m, i) => [String(i), m]);
  }

  /** Number of modules. */
  get length(): number {
    return this.#mods.length;
  }

  /** The module at position i (negative counts from the end). */
  at(i: number): TensorModule {
    const m = this.#mods.at(i);
    if (m === undefined)
      throw new RangeError(`Sequential: index ${i} is out of range for length ${this.length}`);
    return m;
  }

  /** Add a module at the end. */
  append(m: TensorModule): this {
    if (!(m instanceof Module)) throw new TypeError("Sequential.append: argument is not a Module");
    this.#mods.push(m);
    return this;
  }

  [Symbol.iterator](): Iterator<TensorModule> {
    return this.#mods[Symbol.iterator]();
  }
}

/**
 * A list of submodules registered under their positions; the parent's forward decides how to use them.
 *
 * @example
 * ```ts
 * class Deep extends Module {
 *   layers = new ModuleList(Array.from({ length: 4 }, () => new Linear(16, 16)));
 *   forward(x: Tensor) {
 *     for (const l of this.layers) x = l.call(x).relu();
 *     return x;
 *   }
 * }
 * ```
 */
export class ModuleList<M extends AnyModule = AnyModule> extends Module implements Iterable<M> {
  readonly #mods: M[];

  constructor(modules: Iterable<M> = []) {
    super();
    this.#mods = [];
    for (const m of modules) this.append(m);
  }

  /** A ModuleList has no forward of its own; iterate over it in the parent's forward. */
  forward(_x: Tensor): Tensor {
    throw new Error("ModuleList: has no forward; iterate over its modules in the parent module's forward");
  }

  override namedChildren(): [string, AnyModule][] {
    return this.#mods.map((m, i) => [String(i), m]);
  }

  get length(): number {
    return this.#mods.length;
  }

  /** The module at position i (negative counts from the end). */
  at(i: number): M {
    const m = this.#mods.at(i);
    if (m === undefined)
      throw new RangeError(`ModuleList: index ${i} is out of range for length ${this.length}`);
    return m;
  }

  append(m: M): this {
    if (!(m instanceof Module)) throw new TypeError("ModuleList.append: argument is not a Module");
    this.#mods.push(m);
    return this;
  }

  extend(ms: Iterable<M>): this {
    for (const m of ms) this.append(m);
    return this;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.#mods[Symbol.iterator]();
  }
}

/**
 * Submodules registered under string keys, in insertion order (PyTorch's nn.ModuleDict): parameters are named
 * "key.weight", ... The parent's forward decides how to use them.
 *
 * @example
 * ```ts
 * const heads = new ModuleDict({ cls: new Linear(64, 10), box: new Linear(64, 4) });
 * heads.get("cls").call(x);
 * heads.namedParameters().map(([n]) => n); // ["cls.weight", "cls.bias", "box.weight", "box.bias"]
 * ```
 */
export class ModuleDict<M extends AnyModule = AnyModule> extends Module implements Iterable<[string, M]> {
  readonly #mods = new Map<string, M>();

  constructor(modules: Record<string, M> | Iterable<[string, M]> = {}) {
    super();
    const entries = Symbol.iterator in modules ? modules : Object.entries(modules);
    for (const [k, m] of entries as Iterable<[string, M]>) this.set(k, m);
  }

  /** A ModuleDict has no forward of its own; look its modules up in the parent module's forward. */
  forward(_x: Tensor): Tensor {
    throw new Error("ModuleDict: has no forward; use its modules in the parent module's forward");
  }

  override namedChildren(): [string, AnyModule][] {
    return [...this.#mods];
  }

  /** The module under `key` (an error naming the keys if absent). */
  get(key: string): M {
    const m = this.#mods.get(key);
    if (m === undefined) {
      throw new RangeError(
        `ModuleDict: no module "${key}" (keys: ${[...this.#mods.keys()].map((k) => `"${k}"`).join(", ")})`,
      );
    }
    return m;
  }

  /** Add or replace the module under `key` (a replaced key keeps its position, as a Python dict). */
  set(key: string, m: M): this {
    if (!(m instanceof Module)) throw new TypeError(`ModuleDict.set: value of "${key}" is not a Module`);
    if (key === "" || key.includes(".")) {
      throw new RangeError(`ModuleDict: key "${key}" must be non-empty and contain no "."`);
    }
    this.#mods.set(key, m);
    return this;
  }

  has(key: string): boolean {
    return this.#mods.has(key);
  }

  /** Remove the module under `key`; returns it (undefined if absent). */
  delete(key: string): M | undefined {
    const m = this.#mods.get(key);
    this.#mods.delete(key);
    return m;
  }

  keys(): string[] {
    return [...this.#mods.keys()];
  }

  values(): M[] {
    return [...this.#mods.values()];
  }

  get size(): number {
    return this.#mods.size;
  }

  [Symbol.iterator](): Iterator<[string, M]> {
    return this.#mods[Symbol.iterator]();
  }
}

/**
 * A list of parameters registered under their positions "0", "1", ... (PyTorch's nn.ParameterList). A tensor
 * that is not yet a parameter (does not require grad) is copied into a new parameter, as `nn.Parameter(t)`.
 *
 * @example
 * ```ts
 * class Scales extends Module {
 *   s = new ParameterList([ones([4]), ones([4])]);
 *   forward(x: Tensor) {
 *     for (const p of this.s) x = x.mul(p);
 *     return x;
 *   }
 * }
 * new Scales().namedParameters().map(([n]) => n); // ["s.0", "s.1"]
 * ```
 */
export class ParameterList extends Module implements Iterable<Tensor> {
  // the parameters are own properties "0", "1", ... of this object: Module's discovery names them so
  #length = 0;

  constructor(params: Iterable<Tensor> = []) {
    super();
    for (const p of params) this.append(p);
  }

  /** A ParameterList has no forward of its own; use its parameters in the parent module's forward. */
  forward(_x: Tensor): Tensor {
    throw new Error("ParameterList: has no forward; use its parameters in the parent module's forward");
  }

  get length(): number {
    return this.#length;
  }

  /** The parameter at position i (negative counts from the end). */
  at(i: number): Tensor {
    const j = i < 0 ? i + this.#length : i;
    if (!Number.isInteger(j) || j < 0 || j >= this.#length) {
      throw new RangeError(`ParameterList: index ${i} is out of range for length ${this.#length}`);
    }
    return Reflect.get(this, String(j)) as Tensor;
  }

  append(p: Tensor): this {
    if (!(p instanceof Tensor)) throw new TypeError("ParameterList.append: argument is not a Tensor");
    let q = p;
    if (!p.requiresGrad) {
      q = parameter(p.shape, p.dtype);
      noGrad(() => q.copy_(p));
    }
    Reflect.set(this, String(this.#length++), q);
    return this;
  }

  extend(ps: Iterable<Tensor>): this {
    for (const p of ps) this.append(p);
    return this;
  }

  *[Symbol.iterator](): Iterator<Tensor> {
    for (let i = 0; i < this.#length; i++) yield this.at(i);
  }
}
