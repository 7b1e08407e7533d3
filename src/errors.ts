/**
 * Error classes. Every user-facing error names the op, the shapes or dtypes involved, and what was expected.
 * Messages prefixed `internal:` are invariant violations inside chainrule (bugs), never user mistakes.
 */

/** A shape mismatch or invalid shape. */
export class ShapeError extends Error {
  override name = "ShapeError";
}

/** A dtype that an op does not accept. */
export class DTypeError extends TypeError {
  override name = "DTypeError";
}

/** A misuse of automatic differentiation (no derivative, freed graph, non-scalar backward, leaked tracer...). */
export class AutodiffError extends Error {
  override name = "AutodiffError";
}

/**
 * A linear-algebra failure that depends on the values (PyTorch's torch.linalg.LinAlgError): a singular matrix in
 * solve/inv, a matrix that is not positive-definite in cholesky.
 */
export class LinAlgError extends Error {
  override name = "LinAlgError";
}

/** Malformed input data or files. */
export class FormatError extends Error {
  override name = "FormatError";
}

/**
 * An output that cannot be allocated (the typed array or native buffer would exceed what the runtime allows):
 * names the op, the shape, the dtype and the bytes asked for, instead of the runtime's bare RangeError.
 */
export class AllocationError extends RangeError {
  override name = "AllocationError";
  /** The op whose output it was, once known (the evaluator adds it). */
  readonly op: string | undefined;
  constructor(message: string, op?: string, options?: ErrorOptions) {
    super(op === undefined ? message : `${op}: ${message}`, options);
    this.op = op;
  }
}

export function internal(msg: string): Error {
  return new Error(`internal: ${msg}`);
}
