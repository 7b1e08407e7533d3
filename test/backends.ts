/**
 * Running test code on a chosen backend, the backend before it restored after it: around one call (`onBackend`),
 * or around the tests of a `describe` block or a test file (`useBackend`).
 */
import { after, before } from "node:test";
import type { Backend } from "../src/backend/backend.ts";
import { getBackend, setBackend } from "../src/backend/registry.ts";

/** Run `f` with `b` as the current backend; the previous one is restored after, also when `f` throws. */
export function onBackend<T>(b: Backend, f: () => T): T {
  const prev = getBackend();
  setBackend(b);
  try {
    return f();
  } finally {
    setBackend(prev);
  }
}

/**
 * Registers `before` / `after` hooks in the current scope: its tests run on `b()`, and the backend before them
 * is restored after them. Without `b`, the tests run on whatever backend is current.
 */
export function useBackend(b: (() => Backend) | undefined): void {
  let prev: Backend | null = null;
  before(() => {
    if (b !== undefined) {
      prev = getBackend();
      setBackend(b());
    }
  });
  after(() => {
    if (prev !== null) setBackend(prev);
  });
}
