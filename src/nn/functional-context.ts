/**
 * The functional mode (internal: not part of the public API) of `functionalApply` (functional.ts), read by the layers that keep state or
 * draw random numbers: while it is active, BatchNorm replaces its running-statistics buffers with new tensors
 * instead of writing into them, and Dropout takes its masks from the caller instead of its generator. A
 * separate module so that the layers do not import functional.ts (which imports them).
 */
import type { Tensor } from "../tensor/tensor.ts";

/** A Dropout mask asked for while recording: the layer, and the shape and dtype of its input. */
export interface MaskRequest {
  /** The Dropout layer (it draws the mask: `layer._drawMask(shape, dtype)`). */
  readonly layer: { _drawMask(shape: readonly number[], dtype: "float32" | "float64"): Tensor };
  readonly shape: readonly number[];
  readonly dtype: "float32" | "float64";
}

/** What the active functional call does with Dropout: record the requests, or hand out the given masks. */
export interface FunctionalContext {
  /** Masks to hand out in call order, or null while recording. */
  readonly masks: readonly Tensor[] | null;
  /** Requests recorded so far (recording mode). */
  readonly requests: MaskRequest[];
  /** How many masks were handed out or requested. */
  next: number;
}

let active: FunctionalContext | null = null;

/** The active functional call's context, or null outside `functionalApply`. */
export function functionalContext(): FunctionalContext | null {
  return active;
}

/** Make `ctx` active and return the previous context (restore it when the call returns). */
export function enterFunctional(ctx: FunctionalContext | null): FunctionalContext | null {
  const prev = active;
  active = ctx;
  return prev;
}
