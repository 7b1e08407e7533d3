/**
 * Modules as pure functions of their state (torch.func.functional_call with buffers; flax's `apply` with
 * mutable collections): `moduleState(model)` takes the parameters and buffers out as a pytree,
 * `functionalApply(model, state, args)` runs the model on that state and returns its output and the new
 * buffers, `loadModuleState(model, state)` writes a state back. Nothing the module holds changes during a
 * functional call, so it can be traced by `jit` and differentiated with respect to `state.params`.
 *
 * Stateful layers in a functional call:
 * - BatchNorm in training mode returns its new running statistics (and count) as new buffers instead of
 *   writing into its own: they are outputs of the call (inputs and outputs of a jitted training step).
 * - Dropout in training mode multiplies by a mask the caller passes (`opts.masks`, in call order). A jit trace
 *   cannot draw random numbers (they would be frozen into the program), so the masks are drawn outside, by
 *   the layers' own generators in the order an eager forward would draw them: `dropoutRequests` finds the
 *   shapes with a shape-only trace, `drawDropoutMasks` draws them. A training run therefore sees the same
 *   masks with or without jit.
 */
import { makeJaxpr } from "../core/jaxpr-trace.ts";
import { noGrad } from "../core/trace.ts";
import { ShapeError } from "../errors.ts";
import { fmtShape, shapesEqual } from "../shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import { Dropout } from "./dropout.ts";
import { enterFunctional, type FunctionalContext, type MaskRequest } from "./functional-context.ts";
import type { AnyModule, Module, Slot } from "./module.ts";

export type { MaskRequest } from "./functional-context.ts";

/** A module's state as a pytree: trainable parameters and buffers by dotted name. */
export interface ModuleState {
  params: Record<string, Tensor>;
  buffers: Record<string, Tensor>;
}

/** Options of `functionalApply`. */
export interface FunctionalApplyOpts {
  /** The Dropout masks of this call, in the order the layers run (see `dropoutRequests`). */
  masks?: readonly Tensor[];
}

/**
 * The trainable parameters (those that require grad; frozen ones stay in the module as constants) and all
 * buffers of `module`, by dotted name. With `copy` (default) they are detached copies, so a jitted step may
 * donate them without touching the module; `copy: false` gives detached views of the module's own storage.
 *
 * @example
 * ```ts
 * const state = nn.moduleState(model); // { params: { "0.weight": ..., ... }, buffers: { "1.runningMean": ... } }
 * ```
 */
export function moduleState(module: AnyModule, opts: { copy?: boolean } = {}): ModuleState {
  const copy = opts.copy ?? true;
  const take = (t: Tensor) => noGrad(() => (copy ? t.detach().clone() : t.detach()));
  const params: Record<string, Tensor> = {};
  for (const [n, p] of module.namedParameters()) if (p.requiresGrad) params[n] = take(p);
  const buffers: Record<string, Tensor> = {};
  for (const [n, b] of module.namedBuffers()) buffers[n] = take(b);
  return { params, buffers };
}

/**
 * Copy a state (from `moduleState` or a training step) into the module's parameters and buffers, in place, so
 * stateful optimizers and other references to them stay valid. Keys must name parameters or buffers and
 * shapes must match; keys the state lacks are left alone.
 *
 * @example
 * ```ts
 * nn.loadModuleState(model, state); // then evaluate model.call(x) eagerly
 * ```
 */
export function loadModuleState(module: AnyModule, state: Partial<ModuleState>): void {
  const byName = new Map<string, Tensor>([...module.namedParameters(), ...module.namedBuffers()]);
  const pairs: [Tensor, Tensor][] = [];
  for (const part of [state.params, state.buffers]) {
    for (const [n, v] of Object.entries(part ?? {})) {
      const t = byName.get(n);
      if (t === undefined) {
        throw new Error(`loadModuleState: ${module.constructor.name} has no parameter or buffer "${n}"`);
      }
      if (!(v instanceof Tensor) || !shapesEqual(v.shape, t.shape)) {
        throw new ShapeError(
          `loadModuleState: "${n}" has shape ${fmtShape(t.shape)}, the state has ${v instanceof Tensor ? fmtShape(v.shape) : typeof v}`,
        );
      }
      pairs.push([t, v]);
    }
  }
  noGrad(() => {
    for (const [t, v] of pairs) t.copy_(v);
  });
}

function setSlot(s: Slot, v: Tensor): void {
  if (s.index === null) Reflect.set(s.owner, s.key, v);
  else (Reflect.get(s.owner, s.key) as unknown[])[s.index] = v;
}

function readSlot(s: Slot): unknown {
  const v: unknown = Reflect.get(s.owner, s.key);
  return s.index === null ? v : (v as unknown[])[s.index];
}

/** Run `module.call(...args)` with its slots replaced by `state` in functional mode `ctx`. */
function runFunctional<Out>(
  module: Module<unknown[], Out>,
  state: Partial<ModuleState>,
  args: readonly unknown[],
  ctx: FunctionalContext,
): [Out, Record<string, Tensor>] {
  const op = "functionalApply";
  const slots = module._slots();
  const given = new Map<string, Tensor>();
  for (const [kind, part] of [
    ["parameter", state.params],
    ["buffer", state.buffers],
  ] as const) {
    for (const [n, v] of Object.entries(part ?? {})) {
      if (!(v instanceof Tensor)) throw new TypeError(`${op}: state ${kind} "${n}" is not a Tensor`);
      given.set(n, v);
    }
  }
  // a tensor shared by two slots (tied weights) is replaced in both, by the value given under either name
  const byOriginal = new Map<Tensor, Tensor>();
  for (const s of slots) {
    const v = given.get(s.name);
    if (v === undefined) continue;
    if (!shapesEqual(v.shape, s.value.shape)) {
      throw new ShapeError(
        `${op}: "${s.name}" has shape ${fmtShape(s.value.shape)}, the state has ${fmtShape(v.shape)}`,
      );
    }
    byOriginal.set(s.value, v);
  }
  const known = new Set(slots.map((s) => s.name));
  for (const n of given.keys()) {
    if (!known.has(n)) {
      throw new Error(`${op}: ${module.constructor.name} has no parameter or buffer "${n}"`);
    }
  }
  const replaced: [Slot, Tensor][] = [];
  const outer = enterFunctional(ctx);
  try {
    for (const s of slots) {
      const v = byOriginal.get(s.value);
      if (v === undefined) continue;
      replaced.push([s, v]);
      setSlot(s, v);
    }
    const out = module.call(...(args as unknown[]));
    const buffers: Record<string, Tensor> = {};
    for (const s of slots) {
      if (s.kind !== "buffer") continue;
      const now = readSlot(s);
      const before = byOriginal.get(s.value) ?? s.value;
      if (given.has(s.name)) {
        if (!(s.name in buffers) && now instanceof Tensor) buffers[s.name] = now;
      } else if (now !== before) {
        throw new Error(
          `${op}: buffer "${s.name}" was updated (e.g. BatchNorm's running statistics in training mode) but is not in state.buffers, so the update would be lost; pass moduleState(module).buffers, or call module.eval()`,
        );
      }
    }
    return [out, buffers];
  } finally {
    enterFunctional(outer);
    // every slot back to the module's own tensor (BatchNorm may have replaced ones not in `replaced`)
    for (const s of slots) if (readSlot(s) !== s.value) setSlot(s, s.value);
  }
}

/**
 * Call `module` as a pure function of `state`: parameters and buffers named in `state` replace the module's
 * for this call (the module's own are restored afterwards), BatchNorm returns its updated running statistics
 * instead of writing them, and Dropout uses `opts.masks`. Returns the output and the buffers after the call
 * (every buffer of `state.buffers`, new tensors for the updated ones).
 *
 * @example
 * ```ts
 * const state = nn.moduleState(model);
 * const [logits, buffers] = nn.functionalApply(model, state, [x]);
 * const g = grad((p) => nn.crossEntropy(nn.functionalApply(model, { ...state, params: p }, [x])[0], y))(state.params);
 * ```
 */
export function functionalApply<In extends unknown[], Out>(
  module: Module<In, Out>,
  state: Partial<ModuleState>,
  args: In,
  opts: FunctionalApplyOpts = {},
): [Out, Record<string, Tensor>] {
  const masks = opts.masks ?? [];
  const ctx: FunctionalContext = { masks, requests: [], next: 0 };
  const r = runFunctional(module, state, args, ctx);
  if (ctx.next !== masks.length) {
    throw new Error(
      `functionalApply: ${masks.length} Dropout mask(s) given, the call used ${ctx.next} (see dropoutRequests)`,
    );
  }
  return r;
}

/** Whether some Dropout of `module` will draw a mask (training mode, 0 < p < 1). */
export function needsDropoutMasks(module: AnyModule): boolean {
  return module.modules().some((m) => m instanceof Dropout && m.training && m.p > 0 && m.p < 1);
}

/**
 * The masks a functional call of `module` on inputs shaped like `args` needs, in call order: found by
 * tracing the call on shapes only (no computation). Empty when no Dropout draws.
 *
 * @example
 * ```ts
 * const req = nn.dropoutRequests(model, state, [x]);
 * const [out] = nn.functionalApply(model, state, [x], { masks: nn.drawDropoutMasks(req) });
 * ```
 */
export function dropoutRequests<In extends unknown[]>(
  module: Module<In, unknown>,
  state: Partial<ModuleState>,
  args: In,
): MaskRequest[] {
  if (!needsDropoutMasks(module)) return [];
  const ctx: FunctionalContext = { masks: null, requests: [], next: 0 };
  makeJaxpr((s: Partial<ModuleState>, a: unknown[]) => {
    const [out] = runFunctional(module, s, a, ctx);
    return out;
  })(state, args);
  return ctx.requests;
}

/**
 * Draw the masks of `requests` from their layers' generators, in order: the numbers an eager forward pass
 * would draw at that point.
 */
export function drawDropoutMasks(requests: readonly MaskRequest[]): Tensor[] {
  return requests.map((r) => r.layer._drawMask(r.shape, r.dtype));
}
