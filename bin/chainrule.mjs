#!/usr/bin/env node
// The `chainrule` command. Runs the compiled CLI (dist/cli/main.js, present in a published package or after
// `npm run build`); in a fresh clone without a build it registers the tsx loader (a devDependency) and runs the
// TypeScript sources directly, so `npx chainrule` works right after `npm ci`.
import { existsSync } from "node:fs";

const dist = new URL("../dist/cli/main.js", import.meta.url);
let mod;
if (existsSync(dist)) {
  mod = await import(dist.href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  mod = await import(new URL("../src/cli/main.ts", import.meta.url).href);
}
process.exitCode = await mod.main(process.argv.slice(2));
