/**
 * The jitted Adam update on the wasm backend (one thread), 401,408 float32 parameters: normal gradients
 * (1e-3) and gradients whose square is subnormal (1e-20). The generated kernel of jit's Adam program flushes
 * subnormals (src/backend/wasm/codegen.ts "Subnormals"). Run pinned to one core:
 * `taskset -c 1 node --import tsx bench/wasm-jit-adam-ftz.ts`.
 */
import { loadWasmBackend } from "../src/backend/wasm/index.ts";
import { setBackend } from "../src/backend/registry.ts";
import { jit, tensor, type Tensor } from "../src/index.ts";
const r = loadWasmBackend({ threads: 1 } as never);
if ("error" in r) throw new Error(r.error);
setBackend(r.backend);
const n = 401_408;
const [b1, b2, eps] = [0.9, 0.999, 1e-8];
const update = (p: Tensor, g: Tensor, m: Tensor, v: Tensor, a: Tensor, c: Tensor) => {
  const m2 = m.mul(b1).add(g.mul(1 - b1));
  const v2 = v.mul(b2).add(g.square().mul(1 - b2));
  const p2 = p.sub(m2.mul(a).div(v2.sqrt().mul(c).add(eps)));
  return [p2, m2, v2] as const;
};
const step = jit(update, { donateArgnums: [0, 2, 3] });
function run(gval: number, reps: number) {
  let p = tensor(new Float32Array(n).fill(0.5)),
    m = tensor(new Float32Array(n)),
    v = tensor(new Float32Array(n));
  const g = tensor(new Float32Array(n).fill(gval));
  const a = tensor(1e-2),
    c = tensor(30);
  for (let i = 0; i < 5; i++) [p, m, v] = step(p, g, m, v, a, c);
  const t = performance.now();
  for (let i = 0; i < reps; i++) [p, m, v] = step(p, g, m, v, a, c);
  p.dataSync();
  return (performance.now() - t) / reps;
}
for (let k = 0; k < 3; k++)
  console.log(
    `jit wasm Adam: normal ${run(1e-3, 30).toFixed(3)} ms, g=1e-20 ${run(1e-20, 30).toFixed(3)} ms`,
  );
