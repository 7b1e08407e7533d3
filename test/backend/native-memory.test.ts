/**
 * The native backend's memory settings (native/src/addon.cc): large tensors come from the malloc heap, and the
 * part of the heap a large allocation grew is advised for transparent huge pages before its first touch.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { N } from "./native-helpers.ts";

/** AnonHugePages of this process, in kB (null where /proc does not say). */
function anonHugeKb(): number | null {
  try {
    const m = /AnonHugePages:\s+(\d+) kB/.exec(readFileSync("/proc/self/smaps_rollup", "utf8"));
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  }
}

/** Whether the kernel gives huge pages to regions that ask (THP "always" or "madvise"). */
function thpOnRequest(): boolean {
  try {
    return /\[(always|madvise)\]/.test(readFileSync("/sys/kernel/mm/transparent_hugepage/enabled", "utf8"));
  } catch {
    return false;
  }
}

const why = !N
  ? "native backend not built"
  : process.env.CHAINRULE_KEEP_MALLOC === "1"
    ? "CHAINRULE_KEEP_MALLOC=1 leaves malloc alone"
    : !thpOnRequest() || anonHugeKb() === null
      ? "this kernel gives no transparent huge pages on request"
      : false;

test("a large tensor's fresh heap memory is backed by huge pages", { skip: why }, () => {
  const before = anonHugeKb()!;
  const keep: Float32Array[] = [];
  for (let i = 0; i < 4; i++) {
    const a = N!.alloc("float32", 16 << 20, true) as Float32Array; // 64 MiB, uninitialised
    a.fill(1); // first touch
    keep.push(a);
  }
  const gained = anonHugeKb()! - before;
  // 256 MiB touched; at least a quarter of it in 2 MiB pages (the rest may be reused 4 KiB heap pages)
  assert.ok(gained >= 64 * 1024, `AnonHugePages grew by ${gained} kB`);
  assert.equal(keep.length, 4);
});
