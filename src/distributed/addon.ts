/**
 * Loader of the MPI binding (native/src/mpi/mpi_addon.cc, compiled to chainrule_mpi.node where MPI is
 * installed). Separate from the kernel addon, and loaded only by `initProcessGroup`, so that chainrule without
 * MPI never touches libmpi.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import type { TypedArray } from "../dtype.ts";

const PACKAGE_ROOT = new URL("../../", import.meta.url);
/** A local compile (native/build.mjs), then the prebuild packed by scripts/prebuild.mjs. */
const CANDIDATES = ["native/build/Release/chainrule_mpi.node", "prebuilds/mpi/linux-x64/chainrule_mpi.node"];

/** The Debian/Ubuntu packages that provide MPI (the runtime and the headers the build needs). */
export const MPI_PACKAGES = "apt-get install openmpi-bin libopenmpi-dev";

/** An operation started with `{ async: true }` in the binding. */
export interface MpiWork {
  /** Block until the operation completed (bounded by the process group's timeout); throws its error. */
  wait(): void;
  /** Whether it completed (never blocks). */
  test(): boolean;
  /** A promise settled when it completes. */
  promise(): Promise<void>;
}

/** Element interpretation codes of the binding (what a Uint8Array or Uint16Array holds). */
export const ELEM = { plain: 0, bool: 1, bfloat16: 2 } as const;
/** Reduction codes of the binding. */
export const RED = { sum: 0, mean: 1, max: 2, min: 3 } as const;

/** The functions chainrule_mpi.node exports. Offsets and counts are in elements; every one is checked in C++. */
export interface MpiAddon {
  init(timeoutMs: number): { rank: number; size: number; threadLevel: string; version: string };
  info(): { version: string; initialized: boolean };
  allReduce(
    a: TypedArray,
    off: number,
    n: number,
    elem: number,
    red: number,
    async: boolean,
  ): MpiWork | undefined;
  broadcast(a: TypedArray, off: number, n: number, root: number, async: boolean): MpiWork | undefined;
  allGather(
    a: TypedArray,
    aOff: number,
    aN: number,
    b: TypedArray,
    bOff: number,
    bN: number,
    async: boolean,
  ): MpiWork | undefined;
  reduceScatter(
    a: TypedArray,
    aOff: number,
    aN: number,
    b: TypedArray,
    bOff: number,
    bN: number,
    elem: number,
    red: number,
    async: boolean,
  ): MpiWork | undefined;
  send(a: TypedArray, off: number, n: number, dst: number, tag: number, async: boolean): MpiWork | undefined;
  recv(a: TypedArray, off: number, n: number, src: number, tag: number, async: boolean): MpiWork | undefined;
  barrier(async: boolean): MpiWork | undefined;
  finalize(): void;
  /** Print `message` on stderr and end every rank of the job (MPI_Abort); does not return. */
  abort(code: number, message: string): never;
}

/** Load the binding, or say in one sentence why it is not available (and what installs it). */
export function loadMpiAddon(): { addon: MpiAddon; path: string } | { error: string } {
  const require = createRequire(import.meta.url);
  const root = decodeURIComponent(PACKAGE_ROOT.pathname);
  const override = process.env.CHAINRULE_MPI_ADDON;
  const paths = override ? [override] : CANDIDATES.map((c) => root + c);
  const failures: string[] = [];
  for (const p of paths) {
    if (!existsSync(p)) continue;
    try {
      return { addon: require(p) as MpiAddon, path: p };
    } catch (e) {
      failures.push(`${p} does not load (${(e instanceof Error ? e.message : String(e)).split("\n")[0]})`);
    }
  }
  const why =
    failures.length > 0
      ? failures.join("; ")
      : `the MPI binding chainrule_mpi.node was not built (looked for ${paths.join(", ")})`;
  return {
    error:
      `${why}. Install MPI (\`${MPI_PACKAGES}\`) and rebuild the native addon ` +
      "(`npm run build:native` in a checkout, `npm rebuild chainrule` in an installed package)",
  };
}
