/** The fused Adam/AdamW kernel agrees with the composed update it replaces (float64, all options). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { jsBackend } from "../../src/backend/js/index.ts";
import { getBackend, setBackend } from "../../src/backend/registry.ts";
import { Generator, randn, type Tensor } from "../../src/index.ts";
import { Adam, AdamW } from "../../src/optim/index.ts";

function run(fused: boolean, make: (ps: Tensor[]) => Adam | AdamW): number[] {
  const prev = getBackend();
  setBackend(fused ? jsBackend : { ...jsBackend, name: "js-unfused", adamUpdate: undefined });
  try {
    const g = new Generator(7);
    const p = randn([3, 4], { dtype: "float64", generator: g }).requiresGrad_();
    const opt = make([p]);
    for (let k = 0; k < 5; k++) {
      p.grad = randn([4, 3], { dtype: "float64", generator: g }).T; // a non-contiguous gradient
      opt.step();
    }
    return Array.from(p.dataSync());
  } finally {
    setBackend(prev);
  }
}

test("fused and composed Adam/AdamW updates agree", () => {
  const cases: ((ps: Tensor[]) => Adam | AdamW)[] = [
    (ps) => new Adam(ps, { lr: 0.1 }),
    (ps) => new Adam(ps, { lr: 0.05, weightDecay: 0.1, amsgrad: true }),
    (ps) => new Adam(ps, { lr: 0.05, maximize: true, betas: [0.8, 0.9] }),
    (ps) => new AdamW(ps, { lr: 0.05, weightDecay: 0.3, amsgrad: true }),
  ];
  for (const make of cases) {
    const a = run(true, make);
    const b = run(false, make);
    for (const [i, v] of a.entries())
      assert.ok(Math.abs(v - b[i]) <= 1e-12 * (1 + Math.abs(b[i])), `${v} vs ${b[i]}`);
  }
});

test("the optimizer calls the backend's fused kernel when it has one", () => {
  const prev = getBackend();
  let calls = 0;
  setBackend({
    ...jsBackend,
    name: "js-counting",
    adamUpdate(...args) {
      calls++;
      jsBackend.adamUpdate!(...args);
    },
  });
  try {
    const p = randn([5], { dtype: "float64" }).requiresGrad_();
    const opt = new Adam([p], { lr: 0.1 });
    p.grad = randn([5], { dtype: "float64" });
    opt.step();
    assert.equal(calls, 1);
  } finally {
    setBackend(prev);
  }
});
