/**
 * Fallback to the reference, declared in one place: turn a backend implementation (a name, an allocator and any
 * subset of the kernels, with optional lists of the op codes it implements) into a complete Backend whose
 * missing pieces are the js kernels.
 *
 * Everything is resolved here, once, when a backend is built or selected: an omitted kernel becomes the js
 * kernel itself (no wrapper), and only a family whose op list leaves some codes out gets a wrapper, whose check
 * is one property load on a table with a key per op. A backend that provides every kernel and every op code is
 * returned as it is, so the common case adds nothing to a call.
 *
 * The optional `fused` kernel is the exception: it is never filled with the js one (whose float32 results need
 * not match another backend's own unary kernels bit for bit), so `backend.fused !== undefined` says the backend
 * implements fusion itself, which is what jit checks before fusing.
 */
import {
  BINARY_OPS,
  type Backend,
  type BackendImpl,
  type BinaryOp,
  KERNELS,
  type KernelName,
  REDUCE_OPS,
  type ReduceOp,
  UNARY_OPS,
  type UnaryOp,
} from "./backend.ts";
import { jsBackend as js } from "./js/index.ts";

/**
 * `all` as a table op -> implemented, or null when `declared` is absent or covers every op (no check needed).
 * Every op of `all` is a key, so the table has one shape and the lookup stays monomorphic.
 */
function coverage<Op extends string>(
  all: readonly Op[],
  declared: readonly Op[] | undefined,
): Record<Op, boolean> | null {
  if (declared === undefined || all.every((op) => declared.includes(op))) return null;
  const t = {} as Record<Op, boolean>;
  for (const op of all) t[op] = declared.includes(op);
  return t;
}

type OpLists = { -readonly [K in "unaryOps" | "binaryOps" | "reduceOps"]?: BackendImpl[K] };

/** True when `impl` provides every kernel and declares no partial op list: it is a Backend already. */
function isComplete(impl: BackendImpl): impl is Backend {
  return (
    KERNELS.every((k) => typeof impl[k] === "function") &&
    coverage(UNARY_OPS, impl.unaryOps) === null &&
    coverage(BINARY_OPS, impl.binaryOps) === null &&
    coverage(REDUCE_OPS, impl.reduceOps) === null
  );
}

/** Copy kernel k of `impl` into `b` if it has one (b starts as the js kernels). */
function take<K extends KernelName>(b: Backend, impl: Partial<Pick<Backend, KernelName>>, k: K): void {
  const f: Backend[K] | undefined = impl[k];
  if (f !== undefined) b[k] = f;
}

/**
 * The complete Backend for `impl`: `impl` itself if nothing is missing, else a new object with the js kernel
 * for every omitted kernel and for every op code outside the declared lists.
 *
 * @example
 * ```ts
 * const tiny = completeBackend({ name: "tiny", alloc: jsBackend.alloc, binary: myAdd, binaryOps: ["add"] });
 * tiny.binary("mul", a, b, out); // runs the js kernel; tiny.binary("add", ...) runs myAdd
 * ```
 */
export function completeBackend(impl: BackendImpl): Backend {
  if (isComplete(impl)) return impl;
  // `fused` is never filled: a backend fuses only with a kernel of its own (jit asks for b.fused)
  const b: Backend & OpLists = {
    ...js,
    name: impl.name,
    alloc: impl.alloc,
    fused: impl.fused,
    fusedReduce: impl.fused !== undefined && impl.fusedReduce === true,
    dotFused: impl.dotFused,
    // LayerNorm's affine kernels: only a backend's own (prims/norm.ts composes the others' kernels instead)
    layerNormAffine: impl.layerNormAffine,
    layerNormScaledBackward: impl.layerNormScaledBackward,
    layerNormAffineGrads: impl.layerNormAffineGrads,
  };
  for (const k of KERNELS) take(b, impl, k);
  // the declared lists stay readable on the result (the conformance suite reports which ops run js)
  if (impl.unaryOps !== undefined) b.unaryOps = impl.unaryOps;
  if (impl.binaryOps !== undefined) b.binaryOps = impl.binaryOps;
  if (impl.reduceOps !== undefined) b.reduceOps = impl.reduceOps;
  const unaryOk = coverage<UnaryOp>(UNARY_OPS, impl.unaryOps);
  const unary = impl.unary;
  if (unary !== undefined && unaryOk !== null) {
    b.unary = (op, x, out) => (unaryOk[op] ? unary(op, x, out) : js.unary(op, x, out));
  }
  const binaryOk = coverage<BinaryOp>(BINARY_OPS, impl.binaryOps);
  const binary = impl.binary;
  if (binary !== undefined && binaryOk !== null) {
    b.binary = (op, x, y, out) => (binaryOk[op] ? binary(op, x, y, out) : js.binary(op, x, y, out));
  }
  const reduceOk = coverage<ReduceOp>(REDUCE_OPS, impl.reduceOps);
  const reduce = impl.reduce;
  if (reduce !== undefined && reduceOk !== null) {
    b.reduce = (op, x, axes, out) => (reduceOk[op] ? reduce(op, x, axes, out) : js.reduce(op, x, axes, out));
  }
  return b;
}
