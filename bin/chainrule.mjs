#!/usr/bin/env node
// The `chainrule` command. In a checkout of chainrule (src/ present) it registers the tsx loader (a
// devDependency) and runs the TypeScript sources, so `npx chainrule` always runs the current code, even when a
// dist/ from an earlier build or pack is lying around; an installed package ships no src/ and runs the
// compiled CLI, dist/cli/main.js.
import { existsSync } from "node:fs";

const src = new URL("../src/cli/main.ts", import.meta.url);
let mod;
if (existsSync(src)) {
  const { register } = await import("tsx/esm/api");
  register();
  mod = await import(src.href);
} else {
  mod = await import(new URL("../dist/cli/main.js", import.meta.url).href);
}
process.exitCode = await mod.main(process.argv.slice(2));
