/**
 * Ownership of a run's output directory: `chainrule train` takes a lock file there before writing, so two runs
 * into one `--out` cannot silently overwrite each other's checkpoint, model and metrics.
 *
 * The lock is `.chainrule.lock`, created with O_EXCL (exactly one creator wins) and holding the owner's pid.
 * A lock whose pid is no longer alive (a run killed with SIGKILL, a machine reboot) is stale and taken over.
 * Once the lock is held, temporary files that a killed writer left next to the outputs are deleted.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { removeStaleTemps } from "../io/files-node.ts";

/** Name of the lock file inside an output directory. */
export const LOCK_NAME = ".chainrule.lock";

/** Another live run holds the output directory. */
export class OutDirLockedError extends Error {
  override name = "OutDirLockedError";
}

/** True if a process with this pid exists (EPERM: it exists but belongs to someone else). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function readOwner(path: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(path, "utf8").trim(), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null; // vanished meanwhile, or unreadable
  }
}

/** A held lock: `release()` removes it (idempotent). */
export interface OutDirLock {
  path: string;
  release(): void;
}

/**
 * Take the lock of output directory `dir` (which must exist) for this process, then remove stale temporary
 * files of `outputs`. Throws OutDirLockedError naming the owner's pid when a live process holds it.
 *
 * @example
 * ```ts
 * const lock = lockOutDir("runs/a", ["metrics.json"]);
 * try { ... } finally { lock.release(); }
 * ```
 */
export function lockOutDir(dir: string, outputs: readonly string[]): OutDirLock {
  const path = join(dir, LOCK_NAME);
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(path, "wx");
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST" || attempt >= 3) throw err;
    }
    const owner = readOwner(path);
    if (owner !== null && alive(owner)) {
      const who = owner === process.pid ? "this process" : `process ${owner}`;
      throw new OutDirLockedError(
        `--out ${dir}: another chainrule train run (${who}) is writing to this directory (lock file ${path}); wait for it to finish or choose another --out (if no such run exists, delete the lock file)`,
      );
    }
    // stale: its owner is gone. Re-read just before removing, so a lock another process has just taken over
    // (with its own, live pid) is left alone; then retry the exclusive create.
    if (readOwner(path) === owner) rmSync(path, { force: true });
  }
  removeStaleTemps(dir, outputs);
  let held = true;
  return {
    path,
    release() {
      if (!held) return;
      held = false;
      if (readOwner(path) === process.pid) rmSync(path, { force: true });
    },
  };
}
