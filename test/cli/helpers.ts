/**
 * Shared helpers of the CLI tests: temporary directories removed after the file's tests, and `main` run in
 * process with its output captured.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { main } from "../../src/cli/main.ts";

/** A factory of temporary directories named `chainrule-<prefix>-<name>-*`, all removed after the tests. */
export function tempDirs(prefix: string): (name: string) => string {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  return (name) => {
    const d = mkdtempSync(join(tmpdir(), `chainrule-${prefix}-${name}-`));
    dirs.push(d);
    return d;
  };
}

/** Run main in-process, capturing its output. */
export async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(argv, {
    log: (l) => {
      out += `${l}\n`;
    },
    error: (t) => {
      err += t;
    },
    tty: false,
    handleSignals: false,
  });
  return { code, out, err };
}
