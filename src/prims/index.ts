/**
 * The closed set of primitives: the registry, merged from the table each prims module keeps beside its
 * declarations (a new primitive is registered in the module that declares it). `PrimName` is derived from it and
 * `primitive(name)` looks one up; test/coverage.test.ts checks every key equals its entry's name and every rule is
 * exercised by the op table. Each entry's type requires a shape rule, a kernel and a derivative, so a primitive
 * without a rule does not compile. Everything else in chainrule is a composition of these.
 */
import type { Primitive } from "../core/primitive.ts";
import * as A from "./attention.ts";
import * as C from "./contract.ts";
import * as E from "./elementwise.ts";
import * as V from "./movement.ts";
import * as N from "./norm.ts";
import * as R from "./reduce.ts";
import * as Rn from "./rnn.ts";
import * as La from "./linalg.ts";
import * as So from "./sort.ts";

export const primitives = {
  ...E.elementwisePrimitives,
  ...R.reducePrimitives,
  ...N.normPrimitives,
  ...V.movementPrimitives,
  ...C.contractPrimitives,
  ...So.sortPrimitives,
  ...A.attentionPrimitives,
  ...Rn.rnnPrimitives,
  ...La.linalgPrimitives,
} satisfies Record<string, Primitive<never>>;

/** A primitive's name: derived from the table, so there is no second list to keep in step. */
export type PrimName = keyof typeof primitives;

/** The primitive registered under `name` (the table is the registry: a name's entry has that name). */
export function primitive<N extends PrimName>(name: N): (typeof primitives)[N] {
  return primitives[name];
}
