/**
 * `Module`, the base class of every layer and model (PyTorch's `nn.Module`), and `functionalCall`.
 *
 * Registration is by discovery, so a layer reads like PyTorch: own fields are walked in declaration order and
 * - a Tensor field that requires grad is a parameter (a frozen one stays a parameter once seen, see below);
 * - a Module field is a child; an array field holds children (Modules) or parameters (Tensors), named by index;
 * - a buffer (non-trainable state such as BatchNorm's running statistics) is declared explicitly with
 *   `registerBuffer`, because a plain Tensor field may just as well be a constant.
 * Names are dotted paths: `layers.0.weight`. Internal state lives in `#private` fields, which property
 * enumeration does not see, so it never leaks into the discovery.
 *
 * Calling convention: a subclass implements `forward(...)`; users and parent modules call `module.call(...)`,
 * which runs the forward hooks (used by `summary`) around `forward`. Calling `forward` directly also works but
 * bypasses the hooks, as in PyTorch.
 *
 * A frozen parameter (`p.requiresGrad = false`, or `module.requiresGrad_(false)`) stays a parameter (in
 * `parameters()` and `stateDict()`), as in PyTorch: tensors made by `parameter()` or once seen requiring grad in
 * a parameter position are remembered in a WeakSet (identity-based, no mark on the Tensor itself).
 */
import { enterScope, restoreScope } from "../core/scope.ts";
import { noGrad, state } from "../core/trace.ts";
import { type DType, isFloat } from "../dtype.ts";
import { ShapeError } from "../errors.ts";
import { zeros } from "../ops/creation.ts";
import { fmtShape, shapesEqual } from "../shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import { isRecyclingRoot, recycledCall } from "./recycle.ts";
import { summarize } from "./summary.ts";

/** Any module, whatever its forward signature. */
export type AnyModule = Module<unknown[], unknown>;

/** Called after a module's forward with its inputs and output. */
export type ForwardHook = (module: AnyModule, inputs: readonly unknown[], output: unknown) => void;
/** Called before a module's forward with its inputs. */
export type ForwardPreHook = (module: AnyModule, inputs: readonly unknown[]) => void;

/** Returned by the hook registrations; `remove()` unregisters. */
export interface HookHandle {
  remove(): void;
}

/** Options of `loadStateDict`. */
export interface LoadStateDictOpts {
  /** Require the keys to match exactly (default true). Shape mismatches are errors either way. */
  strict?: boolean;
}

/** What `loadStateDict` did not match (always empty when strict). */
export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

/** @internal A place where a parameter or buffer lives: `owner[key]` or `owner[key][index]`. */
export interface Slot {
  name: string;
  kind: "parameter" | "buffer";
  owner: AnyModule;
  key: string;
  index: number | null;
  value: Tensor;
  persistent: boolean;
}

/** Tensors known to be parameters even while they do not require grad (frozen ones). */
const knownParameters = new WeakSet<Tensor>();

function isParameter(t: Tensor): boolean {
  if (t.requiresGrad) knownParameters.add(t);
  return knownParameters.has(t);
}

function setSlot(s: Slot, v: Tensor): void {
  if (s.index === null) Reflect.set(s.owner, s.key, v);
  else (Reflect.get(s.owner, s.key) as unknown[])[s.index] = v;
}

/** A fresh leaf tensor that requires grad: the way layers create their parameters. */
export function parameter(shape: readonly number[], dtype: DType = "float32"): Tensor {
  if (!isFloat(dtype)) throw new TypeError(`parameter: parameters must be float32 or float64, got ${dtype}`);
  const t = zeros(shape, { dtype, requiresGrad: true });
  knownParameters.add(t);
  return t;
}

/**
 * Base class of layers and models. Subclass it, create parameters and child modules as fields, implement
 * `forward`, and call instances with `call`.
 *
 * @example
 * ```ts
 * class MLP extends Module {
 *   fc1 = new Linear(784, 128);
 *   fc2 = new Linear(128, 10);
 *   forward(x: Tensor): Tensor {
 *     return this.fc2.call(this.fc1.call(x).relu());
 *   }
 * }
 * const model = new MLP();
 * const logits = model.call(randn([32, 784]));            // [32, 10]
 * model.namedParameters().map(([n]) => n);                 // ["fc1.weight", "fc1.bias", "fc2.weight", ...]
 * ```
 */
export abstract class Module<In extends unknown[] = [Tensor], Out = Tensor> {
  #training = true;
  /**
   * Training mode flag (Dropout and BatchNorm behave differently in eval mode). Set with train()/eval(). A jitted
   * function that read it while tracing traces again when it changes (core/trace.ts `state.modeReads`).
   */
  get training(): boolean {
    const log = state.modeReads;
    if (log !== null && !log.has(this)) log.set(this, this.#training);
    return this.#training;
  }
  set training(v: boolean) {
    this.#training = v;
  }
  #buffers = new Map<string, boolean>(); // buffer field name -> persistent
  #preHooks: ForwardPreHook[] = [];
  #hooks: ForwardHook[] = [];

  /** The computation. Implemented by subclasses; call modules through `call` so hooks run. */
  abstract forward(...args: In): Out;

  /** Run the module: pre-hooks, `forward`, hooks, inside the module's named scope (`core/scope.ts`). */
  call(...args: In): Out {
    const outer = enterScope(this);
    try {
      for (const h of this.#preHooks) h(this, args);
      const out = isRecyclingRoot(this)
        ? recycledCall(this, () => this.forward(...args))
        : this.forward(...args);
      for (const h of this.#hooks) h(this, args, out);
      return out;
    } finally {
      restoreScope(outer);
    }
  }

  /**
   * Declare a buffer: state saved in `stateDict` and converted by `to()`, but not trained. Sets the field
   * `name` to `t` and returns `t`, so either `this.registerBuffer("runningMean", zeros([c]))` or
   * `runningMean = this.registerBuffer(...)` works. `null` declares an absent buffer.
   */
  registerBuffer<T extends Tensor | null>(name: string, t: T, opts: { persistent?: boolean } = {}): T {
    if (t !== null && !(t instanceof Tensor)) {
      throw new TypeError(`registerBuffer: "${name}" must be a Tensor or null`);
    }
    if (t?.requiresGrad) {
      throw new TypeError(
        `registerBuffer: "${name}" requires grad; a buffer is non-trainable state (make it a parameter field instead)`,
      );
    }
    this.#buffers.set(name, opts.persistent ?? true);
    Reflect.set(this, name, t);
    return t;
  }

  /** @internal Whether any hook is registered (a container fusing layers must then call this one alone). */
  _hasHooks(): boolean {
    return this.#preHooks.length > 0 || this.#hooks.length > 0;
  }

  /** Register a hook run after `forward` on every `call`. */
  registerForwardHook(h: ForwardHook): HookHandle {
    this.#hooks.push(h);
    return { remove: () => void this.#hooks.splice(this.#hooks.indexOf(h) >>> 0, 1) };
  }

  /** Register a hook run before `forward` on every `call`. */
  registerForwardPreHook(h: ForwardPreHook): HookHandle {
    this.#preHooks.push(h);
    return { remove: () => void this.#preHooks.splice(this.#preHooks.indexOf(h) >>> 0, 1) };
  }

  // ---- discovery ----------------------------------------------------------------------------------------------

  /** @internal This module's own parameters and buffers (not its children's), in field order. */
  _ownSlots(): Slot[] {
    const out: Slot[] = [];
    for (const key of Object.keys(this)) {
      const v: unknown = Reflect.get(this, key);
      const persistent = this.#buffers.get(key);
      if (persistent !== undefined) {
        if (v instanceof Tensor) {
          out.push({ name: key, kind: "buffer", owner: this, key, index: null, value: v, persistent });
        }
      } else if (v instanceof Tensor) {
        if (isParameter(v)) {
          out.push({
            name: key,
            kind: "parameter",
            owner: this,
            key,
            index: null,
            value: v,
            persistent: true,
          });
        }
      } else if (Array.isArray(v)) {
        v.forEach((e: unknown, i) => {
          const name = `${key}.${i}`;
          if (e instanceof Tensor && isParameter(e)) {
            out.push({ name, kind: "parameter", owner: this, key, index: i, value: e, persistent: true });
          }
        });
      }
    }
    return out;
  }

  /** Direct children with their names (fields holding Modules, and arrays of Modules named `field.i`). */
  namedChildren(): [string, AnyModule][] {
    const out: [string, AnyModule][] = [];
    for (const key of Object.keys(this)) {
      const v: unknown = Reflect.get(this, key);
      if (v instanceof Module) out.push([key, v]);
      else if (Array.isArray(v)) {
        v.forEach((e: unknown, i) => {
          if (e instanceof Module) out.push([`${key}.${i}`, e]);
        });
      }
    }
    return out;
  }

  /** Direct children. */
  children(): AnyModule[] {
    return this.namedChildren().map(([, m]) => m);
  }

  /** This module and every descendant, depth first, with dotted names ("" for this one); each module once. */
  namedModules(): [string, AnyModule][] {
    const out: [string, AnyModule][] = [];
    const seen = new Set<AnyModule>();
    const walk = (m: AnyModule, prefix: string) => {
      if (seen.has(m)) return;
      seen.add(m);
      out.push([prefix, m]);
      for (const [n, c] of m.namedChildren()) walk(c, prefix === "" ? n : `${prefix}.${n}`);
    };
    walk(this, "");
    return out;
  }

  /** This module and every descendant. */
  modules(): AnyModule[] {
    return this.namedModules().map(([, m]) => m);
  }

  /** @internal Every parameter and buffer slot of the tree with its full dotted name (shared ones repeated). */
  _slots(): Slot[] {
    const out: Slot[] = [];
    const stack = new Set<AnyModule>();
    const walk = (m: AnyModule, prefix: string) => {
      if (stack.has(m)) return; // a reference cycle: a module cannot own itself
      stack.add(m);
      for (const s of m._ownSlots()) out.push({ ...s, name: prefix + s.name });
      for (const [n, c] of m.namedChildren()) walk(c, `${prefix}${n}.`);
      stack.delete(m);
    };
    walk(this, "");
    return out;
  }

  /** Parameters with dotted names, each tensor once (a parameter shared by two layers is listed once). */
  namedParameters(): [string, Tensor][] {
    const seen = new Set<Tensor>();
    const out: [string, Tensor][] = [];
    for (const s of this._slots()) {
      if (s.kind !== "parameter" || seen.has(s.value)) continue;
      seen.add(s.value);
      out.push([s.name, s.value]);
    }
    return out;
  }

  /** All parameters (what an optimizer takes). */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Buffers with dotted names, each tensor once. */
  namedBuffers(): [string, Tensor][] {
    const seen = new Set<Tensor>();
    const out: [string, Tensor][] = [];
    for (const s of this._slots()) {
      if (s.kind !== "buffer" || seen.has(s.value)) continue;
      seen.add(s.value);
      out.push([s.name, s.value]);
    }
    return out;
  }

  /** All buffers. */
  buffers(): Tensor[] {
    return this.namedBuffers().map(([, b]) => b);
  }

  // ---- modes and bulk operations ------------------------------------------------------------------------------

  /** Set training mode on this module and every descendant. */
  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  /** Evaluation mode: `train(false)`. */
  eval(): this {
    return this.train(false);
  }

  /** Apply fn to every descendant (children first) and then to this module, as PyTorch. */
  apply(fn: (m: AnyModule) => void): this {
    for (const c of this.children()) c.apply(fn);
    fn(this);
    return this;
  }

  /** Clear the gradient of every parameter (sets `.grad = null`). */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }

  /** Turn gradient recording of every parameter on or off (freezing keeps them parameters). */
  requiresGrad_(v = true): this {
    for (const p of this.parameters()) p.requiresGrad = v;
    return this;
  }

  /**
   * Convert floating-point parameters and buffers to `dtype` (integer buffers are kept). Parameters become new
   * tensors (a tensor's dtype is fixed), so create optimizers after calling `to`. Gradients are dropped.
   */
  to(dtype: DType): this {
    if (!isFloat(dtype)) throw new TypeError(`Module.to: expected float32 or float64, got ${dtype}`);
    const done = new Map<Tensor, Tensor>();
    for (const s of this._slots()) {
      const t = s.value;
      if (!isFloat(t.dtype) || t.dtype === dtype) continue;
      let r = done.get(t);
      if (r === undefined) {
        r = noGrad(() => t.detach().to(dtype).clone());
        if (s.kind === "parameter") {
          r.requiresGrad = t.requiresGrad;
          knownParameters.add(r);
        }
        done.set(t, r);
      }
      setSlot(s, r);
    }
    return this;
  }

  // ---- state --------------------------------------------------------------------------------------------------

  /** Parameters and persistent buffers by dotted name (detached views sharing storage with the module). */
  stateDict(): Record<string, Tensor> {
    const sd: Record<string, Tensor> = {};
    for (const s of this._slots()) if (s.persistent) sd[s.name] = s.value.detach();
    return sd;
  }

  /**
   * Copy values from a state dict into this module's parameters and buffers, in place (so optimizers holding
   * the parameters keep working). Everything is checked before anything is written: missing and unexpected keys
   * are errors when `strict` (default), and a shape mismatch is always an error naming the key and both shapes.
   *
   * @example
   * ```ts
   * const sd = model.stateDict();
   * other.loadStateDict(sd);                      // same architecture: exact match required
   * other.loadStateDict(partial, { strict: false }); // returns { missingKeys, unexpectedKeys }
   * ```
   */
  loadStateDict(sd: Record<string, Tensor>, opts: LoadStateDictOpts = {}): LoadStateDictResult {
    const strict = opts.strict ?? true;
    const slots = this._slots().filter((s) => s.persistent);
    const expected = new Set(slots.map((s) => s.name));
    const missingKeys = slots.map((s) => s.name).filter((k) => !Object.hasOwn(sd, k));
    const unexpectedKeys = Object.keys(sd).filter((k) => !expected.has(k));
    const name = this.constructor.name;
    if (strict && (missingKeys.length > 0 || unexpectedKeys.length > 0)) {
      const parts: string[] = [];
      if (missingKeys.length > 0) parts.push(`missing keys: ${missingKeys.map((k) => `"${k}"`).join(", ")}`);
      if (unexpectedKeys.length > 0)
        parts.push(`unexpected keys: ${unexpectedKeys.map((k) => `"${k}"`).join(", ")}`);
      throw new Error(
        `loadStateDict: the state dict does not match ${name} (${parts.join("; ")}); pass { strict: false } to load the matching keys only`,
      );
    }
    const mismatched: string[] = [];
    for (const s of slots) {
      const v = sd[s.name];
      if (v === undefined || !Object.hasOwn(sd, s.name)) continue;
      if (!(v instanceof Tensor)) {
        throw new TypeError(`loadStateDict: value of "${s.name}" is not a Tensor`);
      }
      if (!shapesEqual(v.shape, s.value.shape)) {
        mismatched.push(
          `"${s.name}": checkpoint shape ${fmtShape(v.shape)}, module shape ${fmtShape(s.value.shape)}`,
        );
      }
    }
    if (mismatched.length > 0) {
      throw new ShapeError(`loadStateDict: size mismatch in ${name} for ${mismatched.join("; ")}`);
    }
    noGrad(() => {
      for (const s of slots) if (Object.hasOwn(sd, s.name)) s.value.copy_(sd[s.name]);
    });
    return { missingKeys, unexpectedKeys };
  }

  // ---- display ------------------------------------------------------------------------------------------------

  /** The arguments shown in `toString()`, e.g. "in=3, out=2, bias=true". */
  extraRepr(): string {
    return "";
  }

  /** The module tree, PyTorch style. */
  toString(): string {
    const head = `${this.constructor.name}(${this.extraRepr()}`;
    const kids = this.namedChildren();
    if (kids.length === 0) return `${head})`;
    const lines = kids.map(([n, c]) => `  (${n}): ${c.toString().split("\n").join("\n  ")}`);
    return `${head}\n${lines.join("\n")}\n)`;
  }

  /**
   * A table of the layers called by a forward pass on zeros of `inputShape` (batch dim included), their output
   * shapes and parameter counts, and the totals. The pass runs under noGrad in eval mode (no running statistics
   * change; the training flags are restored afterwards).
   *
   * @example
   * ```ts
   * console.log(new Sequential(new Linear(784, 256), new ReLU(), new Linear(256, 10)).summary([1, 784]));
   * ```
   */
  summary(inputShape: readonly number[], opts: { dtype?: DType } = {}): string {
    return summarize(this, inputShape, opts.dtype ?? "float32");
  }
}

/**
 * Run `module` with some parameters or buffers replaced by the given tensors (by dotted name) and restore them
 * afterwards: PyTorch's `torch.func.functional_call`. This is how a module is used inside `grad`, `vjp` or
 * `gradCheck` with respect to its parameters.
 *
 * @example
 * ```ts
 * const lin = new Linear(3, 2);
 * const loss = (w: Tensor, b: Tensor) => functionalCall(lin, { weight: w, bias: b }, x).square().sum();
 * const [gw, gb] = grad(loss, { argnums: [0, 1] })(lin.weight, lin.bias);
 * ```
 */
export function functionalCall<In extends unknown[], Out>(
  module: Module<In, Out>,
  replace: Record<string, Tensor>,
  ...args: In
): Out {
  const slots = new Map(module._slots().map((s) => [s.name, s]));
  const saved: [Slot, Tensor][] = [];
  for (const [name, t] of Object.entries(replace)) {
    const s = slots.get(name);
    if (s === undefined) {
      throw new Error(
        `functionalCall: ${module.constructor.name} has no parameter or buffer "${name}" (it has ${[...slots.keys()].map((k) => `"${k}"`).join(", ")})`,
      );
    }
    if (!shapesEqual(t.shape, s.value.shape)) {
      throw new ShapeError(
        `functionalCall: "${name}" has shape ${fmtShape(s.value.shape)}, the replacement has ${fmtShape(t.shape)}`,
      );
    }
    saved.push([s, s.value]);
    setSlot(s, t);
  }
  try {
    return module.call(...args);
  } finally {
    for (const [s, v] of saved.reverse()) setSlot(s, v);
  }
}
