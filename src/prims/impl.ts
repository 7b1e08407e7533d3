/**
 * Helpers for primitive implementations: turning tensors into backend views and allocating outputs (and
 * instantiating symbolic zeros).
 */
import type { View } from "../backend/backend.ts";
import { getBackend } from "../backend/registry.ts";
import { type Aval, isZero, type MaybeZero } from "../core/primitive.ts";
import { allocTyped, bytesPerElement, type DType, type TypedArray } from "../dtype.ts";
import { AllocationError, AutodiffError, internal } from "../errors.ts";
import { toBF16Bits, toF16Bits } from "../io/half.ts";
import { contiguousStrides, fmtShape, sizeOf } from "../shape.ts";
import { deletedTensors, setCreationLog, Tensor } from "../tensor/tensor.ts";

export { getBackend };

/** The backend view of a concrete tensor. */
export function viewOf(t: Tensor): View {
  if (t._data === null) {
    const gone = deletedTensors.get(t);
    if (gone !== undefined) throw new AutodiffError(`this tensor was deleted: ${gone}`);
    throw internal(`kernel input is not concrete (shape [${t.shape}])`);
  }
  return { data: t._data, shape: t.shape, strides: t._strides, offset: t._offset };
}

/** Where a compiled program's executor serves output storage from (memory planning, core/jit-exec.ts). */
export interface OutArena {
  /** Storage for `n` elements of `dtype` (zero-filled if `zeroed`), from the arena's pool or fresh. */
  take(dtype: DType, shape: readonly number[], n: number, zeroed: boolean): TypedArray;
}

let outArena: OutArena | null = null;

/** Install (or, with null, remove) the arena `allocOut` serves from; returns the previous one. */
export function setOutArena(a: OutArena | null): OutArena | null {
  const prev = outArena;
  outArena = a;
  return prev;
}

/**
 * A fresh contiguous tensor for `aval`, allocated by the current backend: uninitialised (the kernel writes every
 * element) unless `zeroed`.
 */
export function allocOut(av: Aval, zeroed = false): Tensor {
  const arena = outArena;
  const data =
    arena === null
      ? allocData(av.dtype, av.shape, !zeroed)
      : arena.take(av.dtype, av.shape, sizeOf(av.shape), zeroed);
  return Tensor._concrete(data, av.shape, av.dtype, contiguousStrides(av.shape));
}

let allocLog: WeakSet<TypedArray> | null = null;

/**
 * @internal Record (a set) or stop recording (null) every buffer `allocData` hands out; returns the previous
 * set. jit records what a trace allocated: those buffers are new values no caller holds (constants computed at
 * trace time), which it may merge by value.
 */
export function setAllocLog(s: WeakSet<TypedArray> | null): WeakSet<TypedArray> | null {
  const prev = allocLog;
  allocLog = s;
  setCreationLog(s);
  return prev;
}

/**
 * Storage for a tensor of `shape` from the current backend. A runtime's own allocation failure ("Invalid typed
 * array length", "Array buffer allocation failed", a Buffer size error) names nothing: it becomes an
 * AllocationError saying what was asked for, with `op` when the caller knows it (the evaluator adds the
 * primitive's name otherwise).
 */
export function allocData(
  dtype: DType,
  shape: readonly number[],
  uninitialized = false,
  op?: string,
): TypedArray {
  const n = sizeOf(shape);
  try {
    const d = getBackend().alloc(dtype, n, uninitialized);
    if (allocLog !== null) allocLog.add(d);
    return d;
  } catch (e) {
    const bytes = n * bytesPerElement(dtype);
    const why = e instanceof Error ? e.message : String(e);
    throw new AllocationError(
      `cannot allocate a tensor of shape ${fmtShape(shape)} (${dtype}, ${bytes} bytes): ${why}`,
      op,
      { cause: e },
    );
  }
}

/** A contiguous tensor over existing data. */
export function fromData(data: TypedArray, shape: readonly number[], dtype: DType): Tensor {
  return Tensor._concrete(data, shape, dtype, contiguousStrides(shape));
}

/** A 0-d constant (plain JS allocation: constants are tiny and backend-independent). */
export function constant(v: number, dtype: DType): Tensor {
  const d = allocTyped(dtype, 1);
  d[0] =
    dtype === "int32"
      ? v | 0
      : dtype === "bool"
        ? v
          ? 1
          : 0
        : dtype === "float16"
          ? toF16Bits(v)
          : dtype === "bfloat16"
            ? toBF16Bits(v)
            : v;
  return Tensor._concrete(d, [], dtype, []);
}

/** A view sharing `t`'s storage (and version counter, marked as viewed) with new geometry. */
export function viewTensor(
  t: Tensor,
  shape: readonly number[],
  strides: readonly number[],
  offset: number,
): Tensor {
  if (t._data === null) {
    // a view of a tensor deleted by donation would carry no storage and fail later with an internal error
    const gone = deletedTensors.get(t);
    if (gone !== undefined) throw new AutodiffError(`this tensor was deleted: ${gone}`);
  }
  if (t._ver !== null) t._ver.views = true;
  return Tensor._concrete(t._data!, shape, t.dtype, strides, offset, t._ver);
}

/** A tangent or cotangent as a tensor: a symbolic zero becomes a fresh zero-filled one. */
export function instantiate(t: MaybeZero): Tensor {
  return isZero(t) ? allocOut(t, true) : t;
}
