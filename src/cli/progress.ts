/**
 * Training progress on the terminal. On a TTY, one cli-progress bar per epoch redrawn in place (step/total,
 * running loss, examples per second, ETA); elsewhere (CI logs, pipes, files) plain lines at every tenth of the
 * epoch, so a log shows progress without carriage-return noise. Quiet mode shows neither.
 */
import { SingleBar } from "cli-progress";

/** Where progress goes. */
export interface ProgressOptions {
  /** Redraw a bar (true: the stream is an interactive terminal) or print plain lines (false). */
  tty: boolean;
  /** Show nothing. */
  quiet: boolean;
  /** The stream the bar is drawn on (a TTY). */
  stream?: NodeJS.WritableStream;
  /** Plain line sink (non-TTY mode). */
  log: (line: string) => void;
}

/** Per-step values shown by the bar. */
export interface StepInfo {
  /** Mean training loss of the epoch so far. */
  loss: number;
  /** Training examples per second in this epoch so far. */
  speed: number;
}

/** Seconds as "42s", "3m05s", "1h02m". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/**
 * One progress display per epoch: `start`, `update` after each step, `stop` at the end of the epoch (or when
 * interrupted, before anything else is printed).
 *
 * @example
 * ```ts
 * const p = new EpochProgress({ tty: process.stdout.isTTY === true, quiet: false, log: console.log });
 * p.start(1, 3, 56, 0);
 * p.update(1, { loss: 0.9, speed: 800 });
 * p.stop();
 * ```
 */
export class EpochProgress {
  readonly #opts: ProgressOptions;
  #bar: SingleBar | null = null;
  #label = "";
  #total = 0;
  #every = 1;
  #startStep = 0;
  #startTime = 0;

  constructor(opts: ProgressOptions) {
    this.#opts = opts;
  }

  /** Begin epoch `epoch` (1-based) of `epochs`, with `total` steps of which `done` are already done (resume). */
  start(epoch: number, epochs: number, total: number, done: number): void {
    this.stop();
    this.#label = `epoch ${epoch}/${epochs}`;
    this.#total = total;
    this.#every = Math.max(1, Math.round(total / 10));
    this.#startStep = done;
    this.#startTime = performance.now();
    if (this.#opts.quiet || !this.#opts.tty) return;
    this.#bar = new SingleBar({
      format: `${this.#label} {bar} {value}/{total} | loss {loss} | {speed} ex/s | ETA {eta_formatted}`,
      barCompleteChar: "\u2588",
      barIncompleteChar: "\u2591",
      barsize: 24,
      hideCursor: true,
      stream: this.#opts.stream ?? process.stdout,
      clearOnComplete: true,
      // we stop the bar ourselves on SIGINT (the run finishes its step and saves first)
      gracefulExit: false,
      etaBuffer: 20,
      fps: 8,
    });
    this.#bar.start(total, done, { loss: "-", speed: "-" });
  }

  /** Report that `step` steps of the epoch are done. */
  update(step: number, info: StepInfo): void {
    if (this.#opts.quiet) return;
    const loss = info.loss.toFixed(4);
    const speed = Math.round(info.speed).toString();
    if (this.#bar !== null) {
      this.#bar.update(step, { loss, speed });
      return;
    }
    if (this.#opts.tty || (step % this.#every !== 0 && step !== this.#total)) return;
    const elapsed = (performance.now() - this.#startTime) / 1000;
    const rate = (step - this.#startStep) / Math.max(elapsed, 1e-9);
    const eta = rate > 0 ? (this.#total - step) / rate : Number.NaN;
    const width = String(this.#total).length;
    this.#opts.log(
      `${this.#label}  step ${String(step).padStart(width)}/${this.#total}  loss ${loss}  ${speed} ex/s  ETA ${formatDuration(eta)}`,
    );
  }

  /** Remove the bar (no-op in plain mode). */
  stop(): void {
    if (this.#bar !== null) {
      this.#bar.stop();
      this.#bar = null;
    }
  }
}
