/**
 * Fallback to the js reference, declared in one place (src/backend/complete.ts): a backend implementation may
 * omit kernels and list only some op codes; completing it (once, when it is built or selected) gives the js
 * kernel for everything else. Checked on a hand-made partial backend, through the registry, on the native
 * backend over an addon that declares fewer ops and families (what happens when TypeScript gains an op code,
 * e.g. a new BinaryOp, before native implements it), and on wasm's omitted kernels.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { type BackendImpl, type BinaryOp, KERNELS, type View } from "../../src/backend/backend.ts";
import { completeBackend } from "../../src/backend/complete.ts";
import { jsBackend as js } from "../../src/backend/js/index.ts";
import { loadAddon, type NativeAddon } from "../../src/backend/native/addon.ts";
import { createNativeBackend } from "../../src/backend/native/backend.ts";
import { getBackend, setBackend } from "../../src/backend/registry.ts";
import { loadWasmBackend } from "../../src/backend/wasm/index.ts";

const v = (values: number[]): View => ({
  data: new Float64Array(values),
  shape: [values.length],
  strides: [1],
  offset: 0,
});

/** A backend with only `binary`, implementing only add (as 1000 + a + b, so its results are recognisable). */
function tiny(ops: readonly BinaryOp[] | undefined): { impl: BackendImpl; seen: string[] } {
  const seen: string[] = [];
  const impl: BackendImpl = {
    name: "tiny",
    alloc: js.alloc,
    binaryOps: ops,
    binary(op, a, b, out) {
      seen.push(op);
      for (let i = 0; i < out.length; i++) out[i] = 1000 + a.data[i] + b.data[i];
    },
  };
  return { impl, seen };
}

test("completeBackend: omitted kernels are the js kernels themselves; listed op codes run the backend", () => {
  const { impl, seen } = tiny(["add"]);
  const b = completeBackend(impl);
  assert.equal(b.name, "tiny");
  for (const k of KERNELS) if (k !== "binary") assert.equal(b[k], js[k], `${k} is js's`);
  const out = new Float64Array(2);
  b.binary("add", v([1, 2]), v([3, 4]), out);
  assert.deepEqual([...out], [1004, 1006]);
  b.binary("mul", v([1, 2]), v([3, 4]), out);
  assert.deepEqual([...out], [3, 8], "mul is not listed: the js kernel ran");
  b.binary("lt", v([1, 5]), v([3, 4]), new Uint8Array(2));
  assert.deepEqual(seen, ["add"]);
  assert.deepEqual(Reflect.get(b, "binaryOps"), ["add"], "the declared list stays readable");
});

test("completeBackend: no op list means every op; a complete backend is returned as it is", () => {
  const { impl, seen } = tiny(undefined);
  const b = completeBackend(impl);
  const out = new Float64Array(1);
  b.binary("mul", v([2]), v([3]), out);
  assert.deepEqual([...out], [1005]);
  assert.deepEqual(seen, ["mul"]);
  assert.equal(completeBackend(js), js);
});

test("setBackend completes a partial backend once; kernels it omits run js", () => {
  const before = getBackend();
  try {
    const { impl } = tiny(["add"]);
    const b = setBackend(impl);
    assert.equal(getBackend(), b);
    assert.equal(b.unary, js.unary);
    const out = new Float64Array(1);
    b.unary("neg", v([2]), out);
    assert.deepEqual([...out], [-2]);
  } finally {
    setBackend(before);
  }
});

test("native: an op code or kernel family the addon does not declare runs the js kernel", (t) => {
  const r = loadAddon();
  if ("error" in r) {
    t.skip(`native addon not built: ${r.error}`);
    return;
  }
  const real = r.addon;
  const d = real.describe();
  // the addon as if kernels.def lacked the binary op `sub` (its name blanked, so the other codes stay those the
  // compiled kernels use) and the gather family
  const binaryCalls: number[] = [];
  const addon: NativeAddon = {
    ...real,
    init: (m) => real.init(m),
    describe: () => ({
      ...d,
      binary: d.binary.map((op) => (op === "sub" ? "(absent)" : op)),
      families: d.families.filter((f) => f.name !== "gather"),
    }),
    binary(op, a, b, out) {
      binaryCalls.push(op);
      real.binary(op, a, b, out);
    },
  };
  const b = createNativeBackend(addon);
  assert.equal(b.gather, js.gather, "gather comes from js");
  const out = new Float64Array(2);
  b.binary("sub", v([5, 7]), v([1, 2]), out);
  assert.deepEqual([...out], [4, 5]);
  assert.deepEqual(binaryCalls, [], "sub did not reach the addon");
  b.binary("add", v([5, 7]), v([1, 2]), out);
  assert.deepEqual([...out], [6, 9]);
  assert.deepEqual(binaryCalls, [d.binary.indexOf("add")], "add ran natively");
  // gather through the fallback gives the reference result
  const idx: View = { data: new Int32Array([1, 0]), shape: [2], strides: [1], offset: 0 };
  b.gather(v([10, 20]), 0, idx, out);
  assert.deepEqual([...out], [20, 10]);
});

test("native: with every kernel and op declared, the backend is not wrapped", (t) => {
  const r = loadAddon();
  if ("error" in r) {
    t.skip(`native addon not built: ${r.error}`);
    return;
  }
  const b = createNativeBackend(r.addon);
  for (const k of KERNELS) assert.notEqual(b[k], js[k], `${k} is native`);
});

test("wasm: the kernels it omits (gather, argReduce, cumsum) are filled with js's", () => {
  const r = loadWasmBackend();
  assert.ok(!("error" in r), "error" in r ? r.error : "");
  for (const k of ["gather", "argReduce", "cumsum"] as const) {
    assert.equal(r.backend[k], js[k], k);
  }
  assert.notEqual(r.backend.dot, js.dot);
});

test("completed backends keep fast properties (no hash lookup per getBackend().<kernel>)", (t) => {
  // A backend object built by keyed stores of its methods drops into dictionary mode; the native backend did,
  // costing 30-60 ns per eager op. %HasFastProperties reports the object's mode.
  setFlagsFromString("--allow-natives-syntax");
  const hasFast = new Function("o", "return %HasFastProperties(o)") as (o: object) => boolean;
  const { impl } = tiny(["add"]);
  assert.equal(hasFast(completeBackend(impl)), true, "partial backend");
  const w = loadWasmBackend();
  if (!("error" in w)) assert.equal(hasFast(w.backend), true, "wasm");
  const r = loadAddon();
  if ("error" in r) {
    t.skip(`native addon not built: ${r.error}`);
    return;
  }
  assert.equal(hasFast(createNativeBackend(r.addon)), true, "native");
});
