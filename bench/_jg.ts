import { grad, jit, tensor, type Tensor, valueAndGrad } from "../src/index.ts";
import { loadNativeBackend } from "../src/backend/native/index.ts";
import { setBackend } from "../src/backend/registry.ts";
const l = loadNativeBackend();
if ("error" in l) throw new Error(l.error);
setBackend(l.backend);
const p = [tensor(2), tensor(3), tensor(1)];
const f = (x: Tensor, y: Tensor, z: Tensor) => x.mul(y).add(z);
const gg = jit(grad(f, { argnums: [0, 1, 2] }));
const vg = jit(valueAndGrad(f, { argnums: [0, 1, 2] }));
const fg = jit(f);
for (let r = 0; r < 4; r++) {
  for (const [n, g] of [["jit(grad)", () => gg(p[0], p[1], p[2])], ["jit(valueAndGrad)", () => vg(p[0], p[1], p[2])], ["jit(f)", () => fg(p[0], p[1], p[2])]] as const) {
    const t0 = performance.now();
    for (let i = 0; i < 100000; i++) g();
    console.log(n, (((performance.now() - t0) / 100000) * 1000).toFixed(3), "us");
  }
}
