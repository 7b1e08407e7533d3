#!/usr/bin/env node
/**
 * Find the MPI compile and link flags for the optional MPI addon (chainrule_mpi.node), for node-gyp
 * (native/binding.gyp runs `node src/mpi/config.mjs found|cflags|libs` at configure time) and for
 * native/build.mjs (which reports what it found).
 *
 * Tried in order: the MPI compiler wrapper `mpicc` (Open MPI's `-showme:compile` / `-showme:link`, MPICH's
 * `-show`), then pkg-config (`ompi`, `mpich`). MPI counts as found only if a directory of the compile flags
 * (or /usr/include) holds mpi.h. CHAINRULE_SKIP_MPI=1 reports it absent. Prints nothing and exits 0 when
 * there is no MPI, so the build goes on without the addon.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  return r.status === 0 && !r.error ? r.stdout.trim() : undefined;
}

const split = (s) => s.split(/\s+/).filter((t) => t.length > 0);

/** `{ cflags, libs, how }` for this machine's MPI, or undefined. */
export function findMpi() {
  if (process.env.CHAINRULE_SKIP_MPI === "1") return undefined;
  const candidates = [];
  const compile = run("mpicc", ["-showme:compile"]);
  const link = run("mpicc", ["-showme:link"]);
  if (compile !== undefined && link !== undefined) {
    candidates.push({ cflags: split(compile), libs: split(link), how: "mpicc -showme" });
  }
  const show = run("mpicc", ["-show"]);
  if (show !== undefined) {
    const toks = split(show).slice(1); // drop the compiler itself
    candidates.push({
      cflags: toks.filter((t) => t.startsWith("-I")),
      libs: toks.filter((t) => /^-(L|l|Wl,)/.test(t)),
      how: "mpicc -show",
    });
  }
  for (const pkg of ["ompi", "mpich"]) {
    const c = run("pkg-config", ["--cflags", pkg]);
    const l = run("pkg-config", ["--libs", pkg]);
    if (c !== undefined && l !== undefined)
      candidates.push({ cflags: split(c), libs: split(l), how: `pkg-config ${pkg}` });
  }
  for (const c of candidates) {
    const dirs = c.cflags.filter((t) => t.startsWith("-I")).map((t) => t.slice(2));
    dirs.push("/usr/include", "/usr/local/include");
    if (!dirs.some((d) => existsSync(path.join(d, "mpi.h")))) continue;
    if (!c.libs.some((t) => /^-lmpi/.test(t))) continue;
    // a library directory outside the loader's default path is found at run time through an rpath
    const rpaths = c.libs.filter((t) => t.startsWith("-L")).map((t) => `-Wl,-rpath,${t.slice(2)}`);
    return { cflags: c.cflags, libs: [...c.libs, ...rpaths], how: c.how };
  }
  return undefined;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const what = process.argv[2];
  const mpi = findMpi();
  if (what === "found") console.log(mpi === undefined ? "0" : "1");
  else if (what === "cflags") console.log(mpi === undefined ? "" : mpi.cflags.join(" "));
  else if (what === "libs") console.log(mpi === undefined ? "" : mpi.libs.join(" "));
  else
    console.log(
      mpi === undefined ? "no MPI found" : `${mpi.how}: ${mpi.cflags.join(" ")} ${mpi.libs.join(" ")}`,
    );
}
