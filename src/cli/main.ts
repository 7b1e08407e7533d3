/**
 * The `chainrule` command line: `chainrule train`, `chainrule eval`, `chainrule sample` and `chainrule graph`,
 * parsed with commander.
 *
 * `main(argv)` parses the arguments, runs the command and resolves to the process exit code (0 done, 1 error,
 * 130 interrupted by Ctrl-C) instead of exiting, so tests can call it in-process; bin/chainrule.mjs sets
 * `process.exitCode` from it. Option values are checked by the same parsers `runTrain` uses (args.ts), so a bad
 * value reads the same from the command line and from code. Only options given on the command line are passed
 * on; the defaults live in one place (args.ts DEFAULTS), which also matters for `--resume`, where a given option
 * must agree with the saved run.
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { getBackend, setBackend } from "../backend/registry.ts";
import { selectDefaultBackend, setNumThreads } from "../node.ts";
import {
  BACKEND_NAMES,
  ConfigError,
  DATA_NAMES,
  DEFAULT_LR,
  DEFAULTS,
  LIMITS,
  OPTIMIZER_NAMES,
  parseData,
  parseHidden,
  parseTrainData,
  TEXT_DATA_NAMES,
  TEXT_PREFIX,
  parseLr,
  parseNonNegativeInt,
  parseNumberIn,
  parsePositiveInt,
  parseWeightDecay,
  SCHEDULE_NAMES,
  type TrainInput,
} from "./args.ts";
import { runEval } from "./eval.ts";
import { runGraph } from "./graph.ts";
import { IMAGE_MODEL_NAMES, MODEL_NAMES } from "./models.ts";
import { runSample } from "./sample.ts";
import { runTrainText } from "./text-train.ts";
import { runTrain } from "./train.ts";

/** How `main` talks to the outside world (defaults: the process's streams and signals). */
export interface MainIO {
  /** Normal output lines. */
  log?: (line: string) => void;
  /** Error output (commander's messages and ours). */
  error?: (text: string) => void;
  /** Draw a redrawn progress bar (default: stdout is a TTY). */
  tty?: boolean;
  /** Install the SIGINT handler (default true). */
  handleSignals?: boolean;
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
      version?: string;
    };
    return pkg.version ?? "unknown";
  } catch {
    return "unknown";
  }
}

/** Wrap one of args.ts's checks as a commander argument parser (its ConfigError becomes a usage error). */
function parser<T>(check: (value: string) => T): (value: string) => T {
  return (value: string) => {
    try {
      return check(value);
    } catch (e) {
      if (e instanceof ConfigError) {
        // commander already names the option and the value: keep what is expected
        const m = e.message.replace(/^--[\w-]+: /, "").replace(/^invalid value .*?; /, "");
        throw new InvalidArgumentError(m.charAt(0).toUpperCase() + m.slice(1));
      }
      throw e;
    }
  };
}

const lrHelp = Object.entries(DEFAULT_LR)
  .map(([k, v]) => `${k} ${v}`)
  .join(", ");

/** `--threads N`: worker threads of the native backend (overrides $CHAINRULE_NUM_THREADS). */
function threadsOption(): Option {
  return new Option(
    "--threads <n>",
    "threads of the native backend's kernels (default: $CHAINRULE_NUM_THREADS, else one per core)",
  ).argParser(parser((v) => parsePositiveInt("--threads", v, LIMITS.threads)));
}

/**
 * Apply --threads once the backend is chosen. Only the native backend has a thread pool (js runs on the
 * calling thread, wasm in its own workers), so with another backend the flag has nothing to set.
 */
function applyThreads(threads: number | undefined): void {
  if (threads !== undefined && getBackend().name === "native") setNumThreads(threads);
}

function trainCommand(io: Required<MainIO>, done: (code: number) => void): Command {
  const cmd = new Command("train")
    .description(
      "train an image classifier (or, with --model transformer, a character-level language model) and write metrics, weights, a checkpoint and charts",
    )
    .addOption(
      new Option(
        "--data <name|dir|text:file>",
        `dataset: ${DATA_NAMES.join(", ")}, or a directory of MNIST-like IDX files; --model transformer: ${TEXT_DATA_NAMES.join(", ")} (Debian's fortunes package) or ${TEXT_PREFIX}<file> (default: digits; fortunes for the transformer)`,
      ).argParser(parser(parseTrainData)),
    )
    .addOption(
      new Option(
        "--model <name>",
        "architecture: image classifiers mlp, cnn, resnet, lstm (rows as a sequence); transformer: a character-level language model",
      )
        .choices(MODEL_NAMES)
        .default(DEFAULTS.model),
    )
    .addOption(
      new Option(
        "--hidden <sizes>",
        "hidden layer sizes of the mlp, comma-separated (default 256,128); the lstm's hidden size, one per layer (default 128)",
      ).argParser(parser(parseHidden)),
    )
    .addOption(
      new Option(
        "--dropout <p>",
        "dropout before the output layer (mlp, cnn, lstm); inside the transformer's layers",
      )
        .default(DEFAULTS.dropout)
        .argParser(parser((v) => parseNumberIn("--dropout", v, 0, 1))),
    )
    .addOption(
      new Option("--layers <n>", "transformer: layers")
        .default(DEFAULTS.layers)
        .argParser(parser((v) => parsePositiveInt("--layers", v, LIMITS.layers))),
    )
    .addOption(
      new Option("--width <n>", "transformer: model width (the feed-forward block is 4x wider)")
        .default(DEFAULTS.width)
        .argParser(parser((v) => parsePositiveInt("--width", v, LIMITS.width))),
    )
    .addOption(
      new Option("--heads <n>", "transformer: attention heads (must divide --width)")
        .default(DEFAULTS.heads)
        .argParser(parser((v) => parsePositiveInt("--heads", v, LIMITS.heads))),
    )
    .addOption(
      new Option("--context <n>", "transformer: context length in characters")
        .default(DEFAULTS.context)
        .argParser(parser((v) => parsePositiveInt("--context", v, LIMITS.context))),
    )
    .addOption(
      new Option(
        "--clip-grad <norm>",
        "clip the gradients' joint 2-norm to this value (0: off; default 1 for lstm and transformer, else 0)",
      ).argParser(parser((v) => parseNumberIn("--clip-grad", v, 0, LIMITS.clipGrad, true))),
    )
    .addOption(
      new Option("--eval-every <steps>", "transformer: held-out loss every this many steps")
        .default(DEFAULTS.evalEvery)
        .argParser(parser((v) => parsePositiveInt("--eval-every", v, LIMITS.evalEvery))),
    )
    .addOption(
      new Option(
        "--epochs <n>",
        "number of epochs (default 4; lstm 12; transformer 1, one pass over the training text)",
      ).argParser(parser((v) => parsePositiveInt("--epochs", v, LIMITS.epochs))),
    )
    .addOption(
      new Option("--batch-size <n>", "examples per batch (default 64; transformer 32 windows)").argParser(
        parser((v) => parsePositiveInt("--batch-size", v, LIMITS.batchSize)),
      ),
    )
    .addOption(
      new Option("--lr <rate>", `(peak) learning rate (default per optimizer: ${lrHelp})`).argParser(
        parser(parseLr),
      ),
    )
    .addOption(
      new Option("--optimizer <name>", "optimizer").choices(OPTIMIZER_NAMES).default(DEFAULTS.optimizer),
    )
    .addOption(
      new Option("--weight-decay <w>", "weight decay (L2 for sgd/adam/rmsprop/adagrad, decoupled for adamw)")
        .default(DEFAULTS.weightDecay)
        .argParser(parser(parseWeightDecay)),
    )
    .addOption(
      new Option("--schedule <name>", "learning-rate schedule, stepped per batch")
        .choices(SCHEDULE_NAMES)
        .default(DEFAULTS.schedule),
    )
    .addOption(
      new Option("--val-fraction <f>", "fraction of the training set held out for validation (seeded)")
        .default(DEFAULTS.valFraction)
        .argParser(parser((v) => parseNumberIn("--val-fraction", v, 0, 1))),
    )
    .addOption(
      new Option("--seed <n>", "seed of the initialisation, the split, the shuffling and dropout")
        .default(DEFAULTS.seed)
        .argParser(parser((v) => parseNonNegativeInt("--seed", v, LIMITS.seed))),
    )
    .addOption(new Option("--out <dir>", "output directory (default: runs/<timestamp>)"))
    .addOption(
      new Option("--resume <dir>", "continue the run saved in <dir> (give --epochs to train longer)"),
    )
    .addOption(
      new Option(
        "--backend <name>",
        "kernel backend (default: $CHAINRULE_BACKEND, else native if it loads, else js)",
      ).choices(BACKEND_NAMES),
    )
    .addOption(
      new Option(
        "--limit <n>",
        "use only the first n training examples (transformer: the first n characters of the text)",
      ).argParser(parser((v) => parsePositiveInt("--limit", v, LIMITS.limit))),
    )
    .addOption(threadsOption())
    .addOption(
      new Option("--jit", "run each training step as one compiled program (forward, backward, update)"),
    )
    .addOption(new Option("--no-plots", "do not write the SVG charts"))
    .addOption(new Option("--quiet", "print only the final test accuracy"))
    .addOption(
      new Option(
        "--distributed",
        "data-parallel over the processes of `mpirun -np N` (rank 0 prints and writes)",
      ),
    )
    .action(async (_opts: Record<string, unknown>, self: Command) => {
      // only what was given on the command line; args.ts fills the defaults (and checks --resume conflicts)
      const given: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(self.opts())) {
        const own = k === "resume" || k === "threads" || k === "distributed";
        if (!own && self.getOptionValueSource(k) === "cli") given[k] = v;
      }
      const resume = self.opts().resume as string | undefined;
      if (given.backend === undefined) selectDefaultBackend();
      else setBackend(given.backend as string);
      applyThreads(self.opts().threads as number | undefined);
      const controller = new AbortController();
      let presses = 0;
      const onSigint = () => {
        presses++;
        if (presses > 1) {
          io.error("\ninterrupted again: exiting without saving\n");
          process.exit(130);
        }
        io.error("\nCtrl-C: finishing the current step and saving a checkpoint (Ctrl-C again to quit now)\n");
        controller.abort();
      };
      if (io.handleSignals) process.on("SIGINT", onSigint);
      try {
        const distributed = self.opts().distributed === true;
        if (distributed && given.model === "transformer") {
          throw new ConfigError("--distributed: not supported with --model transformer yet");
        }
        const how = { resume, distributed, signal: controller.signal, log: io.log, tty: io.tty };
        const r =
          given.model === "transformer"
            ? await runTrainText(given as TrainInput, how)
            : await runTrain(given as TrainInput, how);
        if (r.status === "interrupted") {
          if (given.model !== "transformer") io.log(`resume with: chainrule train --resume ${r.outDir}`);
          done(130);
        } else {
          done(0);
        }
      } finally {
        if (io.handleSignals) process.off("SIGINT", onSigint);
      }
    });
  return cmd;
}

function evalCommand(io: Required<MainIO>, done: (code: number) => void): Command {
  return new Command("eval")
    .description("evaluate a saved model on a test set: accuracy, confusion matrix, confusion.svg")
    .requiredOption("--model-path <path>", "a run directory or its model.safetensors")
    .addOption(
      new Option("--data <name|dir>", "dataset (default: the one the model was trained on)").argParser(
        parser(parseData),
      ),
    )
    .addOption(new Option("--no-plots", "do not write confusion.svg"))
    .addOption(new Option("--quiet", "print only the accuracy"))
    .addOption(
      new Option("--backend <name>", "kernel backend (default: native if it loads)").choices(BACKEND_NAMES),
    )
    .addOption(threadsOption())
    .action(
      (opts: {
        modelPath: string;
        data?: string;
        plots: boolean;
        quiet?: boolean;
        backend?: string;
        threads?: number;
      }) => {
        if (opts.backend === undefined) selectDefaultBackend();
        else setBackend(opts.backend);
        applyThreads(opts.threads);
        runEval({ modelPath: opts.modelPath, data: opts.data, plots: opts.plots, quiet: opts.quiet }, io.log);
        done(0);
      },
    );
}

function sampleCommand(io: Required<MainIO>, done: (code: number) => void): Command {
  return new Command("sample")
    .description(
      "generate text with a character-level language model trained by chainrule train --model transformer",
    )
    .requiredOption("--model-path <path>", "a run directory or its model.safetensors")
    .addOption(new Option("--prompt <text>", "the text to continue").default("", "a newline"))
    .addOption(new Option("--length <n>", "characters to generate").default("500", "500"))
    .addOption(
      new Option(
        "--temperature <t>",
        "softmax temperature (lower: more conservative; 0: always the likeliest)",
      ).default("0.8", "0.8"),
    )
    .addOption(new Option("--top-k <k>", "draw only among the k likeliest characters (default: all)"))
    .addOption(new Option("--seed <n>", "seed of the draws").default("0", "0"))
    .addOption(
      new Option("--backend <name>", "kernel backend (default: native if it loads)").choices(BACKEND_NAMES),
    )
    .addOption(threadsOption())
    .action(
      (opts: {
        modelPath: string;
        prompt: string;
        length: string;
        temperature: string;
        topK?: string;
        seed: string;
        backend?: string;
        threads?: number;
      }) => {
        if (opts.backend === undefined) selectDefaultBackend();
        else setBackend(opts.backend);
        applyThreads(opts.threads);
        const r = runSample(opts);
        io.log(r.prompt + r.text);
        done(0);
      },
    );
}

function graphCommand(io: Required<MainIO>, done: (code: number) => void): Command {
  return new Command("graph")
    .description(
      "draw a model's training step (forward, loss, and with --backward the gradient) as SVG, DOT or an interactive HTML page",
    )
    .addOption(
      new Option("--model <name>", "architecture").choices(IMAGE_MODEL_NAMES).default(DEFAULTS.model),
    )
    .requiredOption(
      "--out <file>",
      "output file: .svg (laid out by Graphviz), .dot, or .html (one page; click module boxes to open them)",
    )
    .addOption(new Option("--backward", "also draw the backward pass (adjoint equations of the gradient)"))
    .addOption(
      new Option("--depth <n>", "fold modules nested deeper than n into one box (0: the whole network)")
        .default(1)
        .argParser(parser((v) => parseNonNegativeInt("--depth", v, 64))),
    )
    .addOption(
      new Option("--expand <paths>", "module paths drawn open, comma-separated (e.g. 4,4.conv1)").argParser(
        (v) =>
          v
            .split(",")
            .map((p) => p.trim())
            .filter((p) => p !== ""),
      ),
    )
    .addOption(
      new Option(
        "--hidden <sizes>",
        "hidden layer sizes of the mlp, comma-separated (default 256,128); the lstm's hidden size (default 128)",
      ).argParser(parser(parseHidden)),
    )
    .addOption(new Option("--rankdir <dir>", "layout direction").choices(["TB", "LR"]).default("TB"))
    .action(
      async (opts: {
        model: string;
        out: string;
        backward?: boolean;
        depth: number;
        expand?: string[];
        hidden?: number[];
        rankdir: "TB" | "LR";
      }) => {
        await runGraph(opts, io.log);
        done(0);
      },
    );
}

/**
 * Run the command line `argv` (the arguments after the program name) and resolve to the exit code.
 *
 * @example
 * ```ts
 * process.exitCode = await main(process.argv.slice(2));
 * await main(["train", "--epochs", "1", "--limit", "2000", "--out", "runs/t"]); // 0
 * await main(["train", "--model", "vgg"]); // 1, after "error: option '--model <name>' argument 'vgg' is invalid. Allowed choices are mlp, cnn, resnet, lstm, transformer."
 * ```
 */
export async function main(argv: readonly string[], ioIn: MainIO = {}): Promise<number> {
  const io: Required<MainIO> = {
    log: ioIn.log ?? ((l) => console.log(l)),
    error: ioIn.error ?? ((t) => process.stderr.write(t)),
    tty: ioIn.tty ?? process.stdout.isTTY === true,
    handleSignals: ioIn.handleSignals ?? true,
  };
  let code = 0;
  const done = (c: number) => {
    code = c;
  };
  const program = new Command("chainrule")
    .description("train and evaluate neural networks with chainrule")
    .version(version())
    .showHelpAfterError("(add --help for the options)")
    .configureOutput({
      writeOut: (s) => io.log(s.replace(/\n$/, "")),
      writeErr: io.error,
      outputError: io.error,
    })
    .exitOverride();
  for (const sub of [
    trainCommand(io, done),
    evalCommand(io, done),
    sampleCommand(io, done),
    graphCommand(io, done),
  ]) {
    program.addCommand(
      sub
        .exitOverride()
        .showHelpAfterError("(add --help for the options)")
        .configureOutput(program.configureOutput()),
    );
  }
  try {
    await program.parseAsync([...argv], { from: "user" });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    io.error(`error: ${(e as Error).message}\n`);
    return 1;
  }
}
