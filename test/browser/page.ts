/**
 * The browser test's page (bundled with the library's browser entry by esbuild, run in Chromium by
 * browser.test.ts): before init the backend is js; `await init()` compiles wasm asynchronously and makes it
 * current; then the op table, nested derivatives and MLP steps run on wasm, and the op table and nested
 * derivatives again on js. The outcome goes to `window.__result`.
 */
import * as cr from "../../src/index.ts";
import { mlpSteps, nestedGrads, opForwardChecks } from "./scenario.ts";

async function run() {
  const before = cr.getBackend().name;
  const init = await cr.init();
  const wasm = {
    backend: cr.getBackend().name,
    ops: opForwardChecks(),
    nested: nestedGrads(),
    mlp: mlpSteps(5),
  };
  cr.setBackend("js");
  const js = { backend: cr.getBackend().name, ops: opForwardChecks(), nested: nestedGrads() };
  const again = await cr.init({ backend: "wasm" });
  return { before, init, again, wasm, js };
}

Object.assign(globalThis, { __result: run() });
