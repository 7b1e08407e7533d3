/**
 * The verifier probes (test/probes/, see its README): scripts that try what a demanding JAX or PyTorch user would
 * try with jit, the transforms and control flow (compositions in every order against eager code and finite
 * differences, retracing and donation, double backward through scan, cond, jit and checkpoint, ...), each in a
 * process of its own on the js, native and wasm backends. A script exits non-zero and prints its failures when
 * anything disagrees.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

const DIR = fileURLToPath(new URL("./probes/", import.meta.url));
const SCRIPTS = readdirSync(DIR)
  .filter((f) => /^p\d+-.*\.ts$/.test(f))
  .sort((a, b) => Number(a.slice(1, a.indexOf("-"))) - Number(b.slice(1, b.indexOf("-"))));

test("the probe scripts are there", () => {
  assert.ok(SCRIPTS.length >= 16, `found ${SCRIPTS.length} probe scripts in ${DIR}`);
});

for (const backend of ["js", "native", "wasm"]) {
  test(`verifier probes on ${backend}`, () => {
    const failed: string[] = [];
    for (const s of SCRIPTS) {
      const r = spawnSync(process.execPath, ["--import", "tsx", DIR + s], {
        env: { ...process.env, PB: backend },
        encoding: "utf8",
        timeout: 300_000,
      });
      const last = r.stdout.trim().split("\n").at(-1) ?? "";
      if (r.status !== 0 || !/ 0 failures on /.test(last)) {
        const fails = r.stdout.split("\n").filter((l) => l.includes("FAIL"));
        failed.push(
          `${s}: exit ${r.status}, ${last}\n  ${fails.slice(0, 10).join("\n  ")}\n  ${r.stderr.slice(-2000)}`,
        );
      }
    }
    assert.deepEqual(failed, [], failed.join("\n"));
  });
}
