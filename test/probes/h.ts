import { setBackend, type Tensor, tensor } from "../../src/index.ts";
import { loadNativeBackend } from "../../src/backend/native/index.ts";
import { loadWasmBackend } from "../../src/backend/wasm/index.ts";
import { getBackend as gb } from "../../src/backend/registry.ts";

export function pickBackend(): string {
  const want = process.env.PB;
  if (want === "native") {
    const r = loadNativeBackend();
    if ("backend" in r) setBackend(r.backend);
    else throw new Error("no native");
  } else if (want === "wasm") {
    const r = loadWasmBackend();
    if ("backend" in r) setBackend(r.backend);
    else throw new Error("no wasm");
  } else if (want === "js") {
    setBackend("js" as never);
  }
  return gb().name;
}
export const f64 = { dtype: "float64" as const };
let fails = 0;
export function check(name: string, fn: () => unknown): void {
  try {
    const r = fn();
    console.log(`PASS ${name}${r ? `: ${r}` : ""}`);
  } catch (e) {
    fails++;
    const m = e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e);
    console.log(`FAIL ${name}: ${m.slice(0, 600)}`);
    if (process.env.STACK && e instanceof Error) console.log(e.stack);
  }
}
export function expectThrow(name: string, fn: () => unknown, re: RegExp): void {
  try {
    const r = fn();
    fails++;
    console.log(`FAIL ${name}: no error (got ${String(r).slice(0, 200)})`);
  } catch (e) {
    const m = e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e);
    if (re.test(m)) console.log(`PASS ${name}: error: ${m.slice(0, 300)}`);
    else {
      fails++;
      console.log(`FAIL ${name}: unexpected error: ${m.slice(0, 600)}`);
      if (process.env.STACK && e instanceof Error) console.log(e.stack);
    }
  }
}
export function flat(t: Tensor): number[] {
  return [t.toArray() as unknown].flat(Number.POSITIVE_INFINITY) as number[];
}
export function close(got: Tensor, want: Tensor, tol: number, what = ""): void {
  if (JSON.stringify(got.shape) !== JSON.stringify(want.shape))
    throw new Error(`${what} shape ${got.shape} vs ${want.shape}`);
  if (got.dtype !== want.dtype) throw new Error(`${what} dtype ${got.dtype} vs ${want.dtype}`);
  const a = flat(got),
    b = flat(want);
  for (let i = 0; i < b.length; i++) {
    const d = Math.abs(Number(a[i]) - Number(b[i]));
    if (!(d <= tol * (1 + Math.abs(Number(b[i])))) && !Object.is(a[i], b[i]))
      throw new Error(`${what} elem ${i}: got ${a[i]} want ${b[i]}`);
  }
}
/** central finite-difference gradient of scalar f at x (float64). */
export function fdGrad(f: (x: Tensor) => Tensor, x: Tensor, h = 1e-6): Tensor {
  const xs = flat(x);
  const g = xs.map((_, i) => {
    const p = xs.slice();
    p[i] += h;
    const m = xs.slice();
    m[i] -= h;
    const fp = f(tensor(p, f64).reshape(x.shape)).item();
    const fm = f(tensor(m, f64).reshape(x.shape)).item();
    return (fp - fm) / (2 * h);
  });
  return tensor(g, f64).reshape(x.shape);
}
export function done(): void {
  console.log(`== ${fails} failures on ${gb().name}`);
  if (fails > 0) process.exitCode = 1;
}
{
  const want = process.env.PB;
  if (want === "native") {
    const r = loadNativeBackend();
    if ("backend" in r) setBackend(r.backend as never);
    else throw new Error("no native");
  } else if (want === "wasm") {
    const r = loadWasmBackend();
    if ("backend" in r) setBackend(r.backend as never);
    else throw new Error("no wasm");
  }
}
