/**
 * Containers: `Sequential` (modules applied in order) and `ModuleList` (a list of modules whose use the parent
 * decides). Their children are named by position, "0", "1", ..., so a Sequential's parameters are "0.weight",
 * "0.bias", "2.weight", ... as in PyTorch.
 */
import type { Tensor } from "../tensor/tensor.ts";
import type { Activation } from "../ops/nn.ts";
import { ReLU, Sigmoid, Tanh } from "./activation.ts";
import { Conv2d } from "./conv.ts";
import { Linear } from "./linear.ts";
import { type AnyModule, Module } from "./module.ts";

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
