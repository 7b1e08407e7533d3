#!/usr/bin/env node
/**
 * Build the native backend addon (native/build/Release/chainrule_native.node) with node-gyp, offline.
 *
 * Run by `npm run build:native` and by npm's `install` step. At install, a package that ships a prebuild for
 * this platform (prebuilds/, made at pack time by scripts/prebuild.mjs) that loads needs no compiler: the
 * script says so and exits. Otherwise it compiles. It uses the Node headers installed next to the
 * running node (e.g. /usr/include/node for /usr/bin/node) and passes that directory to node-gyp explicitly
 * (--nodedir), so nothing is downloaded and no npmrc setting is needed. It never fails the install: if
 * anything goes wrong it prints one message saying why, exits 0, and chainrule runs on its other backends.
 *
 * Where MPI is installed (native/src/mpi/config.mjs finds mpi.h and libmpi), it also builds the small MPI addon
 * chainrule_mpi.node that `distributed.initProcessGroup` loads; without MPI that target is left out and the
 * build goes on (CHAINRULE_SKIP_MPI=1 leaves it out anyway).
 *
 * Environment: CHAINRULE_SKIP_NATIVE=1 skips the build; CHAINRULE_NATIVE_REBUILD=1 forces a clean rebuild
 * (and compiles even when a prebuild matches); CHAINRULE_NATIVE_STRICT=1 makes a failed build exit 1 (the
 * prebuild script at pack time: a package must not be packed without its addon).
 */
import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { findMpi } from "./src/mpi/config.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const tag = "[chainrule native]";

function log(msg) {
  console.log(`${tag} ${msg}`);
}

/** Exit successfully after explaining why the native backend is not available. */
function giveUp(reason) {
  log(`not built: ${reason}`);
  if (process.env.CHAINRULE_NATIVE_STRICT === "1") process.exit(1);
  const fix = here.includes(`${path.sep}node_modules${path.sep}`)
    ? "npm rebuild chainrule"
    : "npm run build:native";
  log(`chainrule will use its wasm backend; run \`${fix}\` after fixing this to enable it.`);
  process.exit(0);
}

/**
 * The prebuild node-gyp-build picks for this platform in ../prebuilds, if there is one and it loads (a
 * prebuild that does not load, e.g. for another glibc, is reported and compiled over).
 */
function usablePrebuild() {
  const require = createRequire(import.meta.url);
  let file;
  try {
    file = require("node-gyp-build").path(path.join(here, ".."));
  } catch {
    return undefined; // no prebuild for this platform (or node-gyp-build absent): compile
  }
  // node-gyp-build also accepts <root>/build/Release, which is not a prebuild
  if (!file.includes(`${path.sep}prebuilds${path.sep}`)) return undefined;
  try {
    const a = require(file);
    return `${path.relative(path.join(here, ".."), file)} (kernels: ${a.isa()})`;
  } catch (e) {
    log(
      `prebuild ${file} does not load (${e instanceof Error ? e.message.split("\n")[0] : e}); compiling instead`,
    );
    return undefined;
  }
}

/** A directory D such that D/include/node/node_api.h exists (what node-gyp's --nodedir expects). */
function findNodeDir() {
  const candidates = [];
  if (process.env.CHAINRULE_NODEDIR) candidates.push(process.env.CHAINRULE_NODEDIR);
  // <prefix>/bin/node -> <prefix>/include/node
  candidates.push(path.resolve(path.dirname(process.execPath), ".."));
  candidates.push("/usr", "/usr/local");
  for (const dir of candidates) {
    if (existsSync(path.join(dir, "include", "node", "node_api.h"))) return dir;
  }
  return undefined;
}

/** The node-gyp entry script: npm's lifecycle variable, a local install, or the copy bundled with npm. */
function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  try {
    const require = createRequire(import.meta.url);
    candidates.push(require.resolve("node-gyp/bin/node-gyp.js"));
  } catch {
    // not installed locally
  }
  const prefix = path.resolve(path.dirname(process.execPath), "..");
  candidates.push(
    path.join(prefix, "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"),
    path.join(prefix, "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"),
    "/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js",
    "/usr/share/nodejs/node-gyp/bin/node-gyp.js",
  );
  const npmExec = process.env.npm_execpath;
  if (npmExec) {
    candidates.push(path.join(path.dirname(npmExec), "..", "node_modules", "node-gyp", "bin", "node-gyp.js"));
  }
  return candidates.find((c) => c && existsSync(c));
}

function main() {
  if (process.env.CHAINRULE_SKIP_NATIVE === "1") giveUp("CHAINRULE_SKIP_NATIVE=1");
  if (process.env.CHAINRULE_NATIVE_REBUILD !== "1") {
    const prebuild = usablePrebuild();
    if (prebuild !== undefined) {
      log(`using the prebuilt addon ${prebuild}; nothing to compile`);
      return;
    }
  }
  if (process.arch !== "x64") giveUp(`the kernels target x86-64, this machine is ${process.arch}`);
  const nodeDir = findNodeDir();
  if (!nodeDir) {
    giveUp(
      `no Node headers found (looked for include/node/node_api.h under ${path.resolve(path.dirname(process.execPath), "..")}, /usr, /usr/local; set CHAINRULE_NODEDIR)`,
    );
  }
  const gyp = findNodeGyp();
  if (!gyp) giveUp("node-gyp not found (it ships with npm; install npm or node-gyp)");
  const rebuild =
    process.env.CHAINRULE_NATIVE_REBUILD === "1" || !existsSync(path.join(here, "build", "Makefile"));
  // The optional MPI addon (src/mpi) is configured only where MPI is found: configure again when that changed
  // since the last configure, or when binding.gyp did (the kernels are not recompiled by a configure).
  const mpi = findMpi();
  const configured = existsSync(path.join(here, "build", "chainrule_mpi.target.mk"));
  const reconfigure =
    !rebuild &&
    (configured !== (mpi !== undefined) ||
      statSync(path.join(here, "binding.gyp")).mtimeMs >
        statSync(path.join(here, "build", "Makefile")).mtimeMs);
  const jobs = String(Math.max(1, os.availableParallelism?.() ?? os.cpus().length));
  const steps = rebuild ? ["rebuild"] : reconfigure ? ["configure", "build"] : ["build"];
  const args = [gyp, ...steps, `--nodedir=${nodeDir}`, "--release", "-j", jobs];
  log(`node ${process.version}, headers ${path.join(nodeDir, "include", "node")}`);
  log(`node-gyp ${gyp}`);
  log(
    `${rebuild ? "rebuilding" : reconfigure ? "configuring and building" : "building (incremental)"} in ${here} with ${jobs} jobs ...`,
  );
  const env = { ...process.env, npm_config_nodedir: nodeDir };
  const t0 = Date.now();
  const r = spawnSync(process.execPath, args, { cwd: here, env, encoding: "utf8" });
  if (r.error) giveUp(`could not run node-gyp: ${r.error.message}`);
  if (r.status !== 0) {
    const out = `${r.stdout ?? ""}${r.stderr ?? ""}`.split("\n");
    const errors = out.filter((l) => /error|not found|No such file/i.test(l)).slice(0, 8);
    giveUp(
      `node-gyp exited with status ${r.status}:\n  ${(errors.length ? errors : out.slice(-8)).join("\n  ")}`,
    );
  }
  const addon = path.join(here, "build", "Release", "chainrule_native.node");
  if (!existsSync(addon)) giveUp(`node-gyp succeeded but ${addon} is missing`);
  // Load it once: a library that does not load (e.g. a missing symbol) is reported now, not at first use.
  try {
    const require = createRequire(import.meta.url);
    const a = require(addon);
    log(
      `built ${path.relative(process.cwd(), addon)} in ${((Date.now() - t0) / 1000).toFixed(0)} s (kernels: ${a.isa()}, ${a.getNumThreads()} threads)`,
    );
  } catch (e) {
    giveUp(`the addon was built but does not load: ${e instanceof Error ? e.message : e}`);
  }
  reportMpi(mpi);
}

/** Say whether the optional MPI addon (distributed training) was built; never fails the build. */
function reportMpi(mpi) {
  if (mpi === undefined) {
    log(
      "MPI binding not built: no MPI found (distributed training across processes needs `apt-get install openmpi-bin libopenmpi-dev`, then `npm run build:native`)",
    );
    return;
  }
  const file = path.join(here, "build", "Release", "chainrule_mpi.node");
  if (!existsSync(file)) {
    log(`MPI binding not built although ${mpi.how} found MPI (see the node-gyp output above)`);
    return;
  }
  try {
    const require = createRequire(import.meta.url);
    log(`built the MPI binding ${path.relative(process.cwd(), file)} (${require(file).info().version})`);
  } catch (e) {
    log(`the MPI binding was built but does not load: ${e instanceof Error ? e.message.split("\n")[0] : e}`);
  }
}

try {
  main();
} catch (e) {
  giveUp(`unexpected error: ${e instanceof Error ? e.message : e}`);
}
