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

/** Malformed input data or files. */
export class FormatError extends Error {
  override name = "FormatError";
}

export function internal(msg: string): Error {
  return new Error(`internal: ${msg}`);
}
