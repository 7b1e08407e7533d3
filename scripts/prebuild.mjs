#!/usr/bin/env node
/**
 * Put the compiled native addon into prebuilds/ for packing (npm's `prepack`), and remove it again after
 * (`postpack`, with --clean).
 *
 * The published package carries the addon for linux-x64 with glibc (the kernels pick AVX-512, AVX2 or baseline
 * x86-64 at run time, so one file serves every x86-64 Linux CPU), named by the prebuilds/ convention that
 * node-gyp-build reads: prebuilds/linux-x64/node.napi.glibc.node (N-API, so one file for every Node >= 20).
 * Installing the package then needs no compiler and no install script. The file is not kept in git: it is
 * built from native/src here (an incremental node-gyp build, strict: packing fails if it does not build), and
 * removed after packing so a checkout keeps loading its own fresh native/build. The MPI binding, where it was
 * built, goes to prebuilds/mpi/linux-x64/chainrule_mpi.node.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const outDir = path.join(root, "prebuilds");

if (process.argv.includes("--clean")) {
  rmSync(outDir, { recursive: true, force: true });
  process.exit(0);
}

if (process.platform !== "linux" || process.arch !== "x64") {
  console.error(`prebuild: packs are made on linux-x64 (glibc); this is ${process.platform}-${process.arch}`);
  process.exit(1);
}

/** The newest modification time under native/src and of binding.gyp: what the addon is built from. */
function newestSource() {
  let newest = statSync(path.join(root, "native", "binding.gyp")).mtimeMs;
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(path.join(root, "native", "src"));
  return newest;
}

rmSync(outDir, { recursive: true, force: true });
const built = path.join(root, "native", "build", "Release", "chainrule_native.node");
// An addon newer than every source is what an incremental build would leave unchanged: use it as is (and
// do not run node-gyp in a native/build that someone else may be building in). Otherwise compile, strictly.
if (existsSync(built) && statSync(built).mtimeMs >= newestSource()) {
  console.log(`prebuild: ${path.relative(root, built)} is newer than native/src; packing it`);
} else {
  const r = spawnSync(process.execPath, [path.join(root, "native", "build.mjs")], {
    stdio: "inherit",
    env: { ...process.env, CHAINRULE_NATIVE_STRICT: "1", CHAINRULE_SKIP_NATIVE: "" },
  });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const target = path.join(outDir, "linux-x64", "node.napi.glibc.node");
mkdirSync(path.dirname(target), { recursive: true });
copyFileSync(built, target);
console.log(`prebuild: ${path.relative(root, target)} (${(statSync(target).size / 1024).toFixed(0)} KiB)`);

// The optional MPI binding (distributed training), built where MPI was found: packed beside, in a directory
// node-gyp-build does not scan (src/distributed/addon.ts loads it by path). It needs the same libmpi soname
// at run time (Open MPI's libmpi.so.40); elsewhere initProcessGroup says to install MPI and rebuild.
const mpiBuilt = path.join(root, "native", "build", "Release", "chainrule_mpi.node");
if (existsSync(mpiBuilt)) {
  const mpiTarget = path.join(outDir, "mpi", "linux-x64", "chainrule_mpi.node");
  mkdirSync(path.dirname(mpiTarget), { recursive: true });
  copyFileSync(mpiBuilt, mpiTarget);
  console.log(`prebuild: ${path.relative(root, mpiTarget)} (MPI binding)`);
} else {
  console.log("prebuild: no MPI binding to pack (MPI was not found when the addon was built)");
}
