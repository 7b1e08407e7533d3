/**
 * The process group: which process this is (rank) among how many (world size), on MPI.
 *
 * A job is launched by an MPI launcher (`mpirun -np 4 node train.js`, `srun --mpi=pmix ...`), which starts one
 * process per rank; each calls `initProcessGroup()` once, before any collective. A process started without a
 * launcher is a world of one: it needs no MPI at all, and every collective is the identity (or a copy).
 *
 * Faults: with more than one rank, a rank that throws an uncaught exception (or rejects a promise nobody
 * handles), exits with a non-zero code, or waits longer than `timeoutMs` in a collective, ends the whole job
 * with MPI_Abort, after printing on stderr which rank failed and why. The other ranks, which would otherwise
 * wait forever in their next collective, are stopped by the launcher. A rank that is killed outright is
 * detected by the launcher itself, which stops the others.
 */
import { loadMpiAddon, MPI_PACKAGES, type MpiAddon } from "./addon.ts";

/** Options of {@link initProcessGroup}. */
export interface InitProcessGroupOptions {
  /** The communication backend; "mpi" (the only one, and the default). */
  backend?: "mpi";
  /**
   * Longest wait, in ms, of a blocking collective (or a work handle's `wait()`) before the job is ended with
   * a clear error (default 30 minutes, as PyTorch; 0 waits forever). MPI cannot cancel a collective, so a
   * timeout always ends the job.
   */
  timeoutMs?: number;
  /**
   * Expected world size, checked against the launcher's: asking for more than one process without a
   * launcher is an error (instead of silently training alone).
   */
  worldSize?: number;
  /** End the job when this rank throws an uncaught exception or exits non-zero (default true). */
  abortOnError?: boolean;
}

/** What {@link initProcessGroup} set up. */
export interface ProcessGroupInfo {
  rank: number;
  worldSize: number;
  /** "mpi", or "local" for a world of one process started without a launcher. */
  backend: "mpi" | "local";
  /** The MPI library (e.g. "Open MPI v4.1.4"), or "" for "local". */
  library: string;
  /** The thread support MPI granted ("multiple", "serialized", "funneled"; "" for "local"). */
  threadLevel: string;
}

/** @internal The current group. */
export interface Group extends ProcessGroupInfo {
  addon: MpiAddon | null;
  timeoutMs: number;
}

let group: Group | null = null;
let handlersInstalled = false;

/** The world size and rank the launcher announced in the environment, if this process was started by one. */
export function launcherEnv(): { size: number; rank: number; launcher: string } | undefined {
  const env = process.env;
  const pairs: [string, string, string][] = [
    ["OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "mpirun (Open MPI)"],
    ["PMI_SIZE", "PMI_RANK", "an MPI launcher (PMI)"],
    ["PMIX_SIZE", "PMIX_RANK", "an MPI launcher (PMIx)"],
  ];
  for (const [s, r, launcher] of pairs) {
    if (env[s] !== undefined && env[s] !== "") {
      return { size: Number(env[s]), rank: Number(env[r] ?? 0), launcher };
    }
  }
  // srun --mpi=pmix sets PMIX_RANK but not always a size
  if (env.PMIX_RANK !== undefined && env.PMIX_RANK !== "") {
    return { size: Number.NaN, rank: Number(env.PMIX_RANK), launcher: "an MPI launcher (PMIx)" };
  }
  return undefined;
}

/**
 * Join the job's process group. Call it once per process, before any collective, DistributedDataParallel or
 * DistributedSampler. Under `mpirun`/`srun` it initialises MPI through the MPI binding; without a launcher
 * the world is this one process and MPI is not needed.
 *
 * @example
 * ```ts
 * // mpirun -np 2 node train.js
 * const { rank, worldSize } = distributed.initProcessGroup({ backend: "mpi" });
 * ```
 */
export function initProcessGroup(opts: InitProcessGroupOptions = {}): ProcessGroupInfo {
  const backend = opts.backend ?? "mpi";
  if (backend !== "mpi") {
    throw new TypeError(`initProcessGroup: unknown backend '${String(backend)}'; the backend is "mpi"`);
  }
  const timeoutMs = opts.timeoutMs ?? 30 * 60 * 1000;
  if (!(timeoutMs >= 0) || !Number.isFinite(timeoutMs)) {
    throw new RangeError(`initProcessGroup: timeoutMs must be a non-negative number of ms, got ${timeoutMs}`);
  }
  if (group !== null) {
    throw new Error(
      "initProcessGroup: the process group is already initialised (call destroyProcessGroup first)",
    );
  }
  const env = launcherEnv();
  if (env === undefined) {
    if (opts.worldSize !== undefined && opts.worldSize !== 1) {
      throw new Error(
        `initProcessGroup: a world of ${opts.worldSize} processes was requested, but this process was not started ` +
          "by an MPI launcher; run it as `mpirun -np N node script.js` (MPI: " +
          `\`${MPI_PACKAGES}\`)`,
      );
    }
    group = {
      rank: 0,
      worldSize: 1,
      backend: "local",
      library: "",
      threadLevel: "",
      addon: null,
      timeoutMs,
    };
    return info(group);
  }
  const loaded = loadMpiAddon();
  if ("error" in loaded) {
    throw new Error(
      `initProcessGroup: this process was started by ${env.launcher} (world size ${env.size}) but the MPI binding ` +
        `is not available: ${loaded.error}`,
    );
  }
  const addon = loaded.addon;
  const r = addon.init(timeoutMs);
  if (opts.worldSize !== undefined && opts.worldSize !== r.size) {
    addon.abort(
      1,
      `chainrule.distributed: initProcessGroup on rank ${r.rank}: worldSize ${opts.worldSize} was requested but the ` +
        `launcher started ${r.size} processes; ending the job`,
    );
  }
  group = {
    rank: r.rank,
    worldSize: r.size,
    backend: "mpi",
    library: r.version,
    threadLevel: r.threadLevel,
    addon,
    timeoutMs,
  };
  if (opts.abortOnError ?? true) installFaultHandlers();
  else installExitHandler();
  return info(group);
}

function info(g: Group): ProcessGroupInfo {
  return {
    rank: g.rank,
    worldSize: g.worldSize,
    backend: g.backend,
    library: g.library,
    threadLevel: g.threadLevel,
  };
}

/** End the job from this rank: print why on stderr and stop every rank (MPI_Abort). Does not return. */
export function abortJob(message: string, code = 1): never {
  const g = group;
  const where = g === null ? "" : ` rank ${g.rank} of ${g.worldSize}:`;
  const text = `chainrule.distributed:${where} ${message}`;
  if (g !== null && g.addon !== null && g.worldSize > 1) {
    g.addon.abort(code, `${text}\nchainrule.distributed: ending every rank of the job (MPI_Abort)`);
  }
  process.stderr.write(`${text}\n`);
  process.exit(code);
}

function describeError(err: unknown): string {
  if (err instanceof Error) return err.stack ?? `${err.name}: ${err.message}`;
  return String(err);
}

function installExitHandler(): void {
  process.on("exit", (code) => {
    const g = group;
    if (g === null || g.addon === null) return;
    if (code !== 0 && g.worldSize > 1) {
      g.addon.abort(
        code,
        `chainrule.distributed: rank ${g.rank} of ${g.worldSize} is exiting with code ${code}; ending the job`,
      );
    }
    group = null;
    g.addon.finalize();
  });
}

function installFaultHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  // The monitor runs before Node's default handling of an uncaught exception (which would print it and
  // exit): here the other ranks are told at once, instead of waiting in their next collective.
  process.on("uncaughtExceptionMonitor", (err, origin) => {
    const g = group;
    if (g === null || g.addon === null || g.worldSize <= 1) return;
    const what = origin === "unhandledRejection" ? "an unhandled promise rejection" : "an uncaught exception";
    abortJob(`failed with ${what}:\n${describeError(err)}`);
  });
  installExitHandler();
}

/** @internal The current group, or an error naming `op` if there is none. */
export function currentGroup(op: string): Group {
  if (group === null) {
    throw new Error(`${op}: the process group is not initialised; call distributed.initProcessGroup() first`);
  }
  return group;
}

/** Whether `initProcessGroup` has been called (and not undone by `destroyProcessGroup`). */
export function isInitialized(): boolean {
  return group !== null;
}

/** This process's rank, 0 ... worldSize - 1. */
export function getRank(): number {
  return currentGroup("getRank").rank;
}

/** The number of processes in the job. */
export function getWorldSize(): number {
  return currentGroup("getWorldSize").worldSize;
}

/** Whether the MPI binding loads here (MPI installed and the addon built), without initialising MPI. */
export function isMpiAvailable(): boolean {
  return !("error" in loadMpiAddon());
}

/**
 * Leave the process group: waits for the operations still queued, then finalises MPI. MPI cannot be
 * initialised again in the same process. Also done automatically when the process exits normally.
 */
export function destroyProcessGroup(): void {
  const g = currentGroup("destroyProcessGroup");
  group = null;
  if (g.addon !== null) g.addon.finalize();
}
