/**
 * Named scopes (JAX's name stack): which module call an operation ran in.
 *
 * `Module.call` enters a scope owned by the module for the duration of its forward; the jaxpr trace records the
 * current scope on every equation it appends, and the tape records it on every node, so backward binds the
 * adjoint equations of an operation inside the same owners, marked `adjoint` (JAX's `transpose(...)` names). A
 * renderer (`viz.graph`) turns the owners into names ("4.conv1") and draws each scope as a box.
 *
 * The current scope is a linked list of frames, so entering is one small allocation, leaving is one assignment,
 * and taking a snapshot (what an equation stores) is reading a pointer: eager execution pays ~nothing.
 */

/** One entered scope: its owner (a module) and the enclosing frame. */
export interface ScopeFrame {
  /** What entered the scope: the module whose `call` is running (opaque to core). */
  readonly owner: object;
  /** The enclosing scope (null at the top). */
  readonly parent: ScopeFrame | null;
  /** Entered by backward to run the adjoint (VJP) of an operation recorded in this scope. */
  readonly adjoint?: boolean;
}

let current: ScopeFrame | null = null;

/** The innermost scope now (null outside any module call). */
export function currentScope(): ScopeFrame | null {
  return current;
}

/** Enter a scope owned by `owner`; returns the previous scope, to give back to `restoreScope`. */
export function enterScope(owner: object): ScopeFrame | null {
  const prev = current;
  current = { owner, parent: prev };
  return prev;
}

/** Make `frame` the current scope again (the value `enterScope` returned, or a recorded snapshot). */
export function restoreScope(frame: ScopeFrame | null): void {
  current = frame;
}

/** The scope backward runs the adjoint of an operation recorded in `frame` in: the same owners, marked adjoint. */
export function adjointScope(frame: ScopeFrame | null): ScopeFrame | null {
  if (frame === null || frame.adjoint === true) return frame;
  return { owner: frame.owner, parent: frame.parent, adjoint: true };
}
