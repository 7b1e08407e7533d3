/**
 * `chainrule graph`: draw a model's training step (forward pass and cross-entropy loss; with `--backward` also the
 * adjoint equations of the gradient with respect to the parameters) as SVG, Graphviz DOT, or an interactive HTML
 * page.
 *
 * Each module call is a labelled box; modules nested deeper than `--depth` are folded into one box (edges labelled
 * with the shapes entering and leaving it), `--expand 4,4.conv1` opens chosen ones, and `--depth 0` folds the whole
 * network. The model is built as `chainrule train` builds it (seeded), on a small random batch: the structure does
 * not depend on the batch size, and only small values (the loss) are printed on the picture.
 *
 * An .html output is one self-contained page (`graphHtml`): it holds both the forward graph and the one with the
 * backward pass (a toggle switches; `--backward` picks the first shown), and module boxes open and fold on click
 * starting from the `--depth`/`--expand` view.
 *
 * The output file is checked before anything is traced (extension .svg, .dot or .html; an existing path must be a
 * regular file) and written atomically (`writeFileAtomic`: a temporary file renamed over the target, so a
 * symlink or a concurrent reader never sees half a file).
 */
import { lstatSync, mkdirSync } from "node:fs";
import { dirname, extname, resolve } from "node:path";
import { manualSeed, randn, tensor } from "../ops/creation.ts";
import { writeFileAtomic } from "../io/files-node.ts";
import { graphHtml } from "../viz/graph-html.ts";
import { trainingStepGraph } from "../viz/graph-model.ts";
import { ConfigError, DEFAULTS } from "./args.ts";
import { buildModel, IMAGE_MODEL_NAMES, type ImageModelName } from "./models.ts";

/** What `chainrule graph` takes. */
export interface GraphCommandOptions {
  model: string;
  /** Output file, .svg, .dot or .html (an interactive page). */
  out: string;
  backward?: boolean;
  /** Module boxes nested deeper than this are folded (default 1: the network's layers are boxes). */
  depth?: number;
  /** Module paths drawn open ("4", "4.conv1"). */
  expand?: readonly string[];
  /** Hidden sizes of the mlp (default as `chainrule train`). */
  hidden?: number[];
  /** Examples in the traced batch (default 2). */
  batch?: number;
  /** Seed of the weights and the batch (default 0). */
  seed?: number;
  /** Layout direction (default "TB"). */
  rankdir?: "LR" | "TB";
}

/** The output formats, by file extension. */
export const GRAPH_FORMATS = [".svg", ".dot", ".html"] as const;

/** Check the output path before any work: a known extension, and not a directory, device or FIFO. */
export function checkGraphOut(out: string): "svg" | "dot" | "html" {
  if (typeof out !== "string" || out.trim() === "")
    throw new ConfigError("--out: expected a file name such as graph.svg");
  const ext = extname(out).toLowerCase();
  if (!(GRAPH_FORMATS as readonly string[]).includes(ext)) {
    throw new ConfigError(
      `--out: ${JSON.stringify(out)} has extension ${ext === "" ? "(none)" : JSON.stringify(ext)}; expected one of ${GRAPH_FORMATS.join(", ")}`,
    );
  }
  let st: ReturnType<typeof lstatSync> | undefined;
  try {
    st = lstatSync(out);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      throw new ConfigError(`--out: cannot use ${out}: ${(err as Error).message}`);
    }
  }
  if (st !== undefined && !st.isFile() && !st.isSymbolicLink()) {
    const kind = st.isDirectory()
      ? "a directory"
      : st.isFIFO()
        ? "a FIFO (named pipe)"
        : "not a regular file";
    throw new ConfigError(`--out: ${out} is ${kind}; expected a file name such as graph.svg`);
  }
  return ext === ".svg" ? "svg" : ext === ".dot" ? "dot" : "html";
}

/**
 * Draw the model's training step into `opts.out`; returns the path written and the number of equations.
 *
 * @example
 * ```ts
 * await runGraph({ model: "resnet", backward: true, out: "resnet.svg" });
 * ```
 */
export async function runGraph(
  opts: GraphCommandOptions,
  log: (line: string) => void = () => {},
): Promise<{ path: string; eqns: number }> {
  if (!(IMAGE_MODEL_NAMES as readonly string[]).includes(opts.model)) {
    throw new ConfigError(
      `--model: invalid value ${JSON.stringify(opts.model)}; expected one of ${IMAGE_MODEL_NAMES.join(", ")}`,
    );
  }
  const format = checkGraphOut(opts.out);
  const batch = opts.batch ?? 2;
  if (!Number.isInteger(batch) || batch < 2 || batch > 64) {
    throw new ConfigError(`--batch: expected an integer in [2, 64], got ${batch}`);
  }
  const depth = opts.depth ?? 1;
  if (!Number.isInteger(depth) || depth < 0)
    throw new ConfigError(`--depth: expected an integer >= 0, got ${depth}`);
  const name = opts.model as ImageModelName;
  manualSeed(opts.seed ?? 0);
  const { net } = buildModel({
    name,
    inputShape: [1, 28, 28],
    numClasses: 10,
    hidden: opts.hidden ?? (name === "lstm" ? [128] : [...DEFAULTS.hidden]),
    dropout: 0,
    mean: 0.1307,
    std: 0.3081,
  });
  const known = new Set(net.namedModules().map(([n]) => n));
  for (const p of opts.expand ?? []) {
    if (!known.has(p)) {
      const list = [...known].filter((n) => n !== "");
      throw new ConfigError(
        `--expand: the ${name} has no module "${p}" (its modules are ${list.slice(0, 40).join(", ")}${list.length > 40 ? ", ..." : ""})`,
      );
    }
  }
  const x = randn([batch, 1, 28, 28]);
  const y = tensor(
    Array.from({ length: batch }, (_, i) => i % 10),
    { dtype: "int32" },
  );
  const step = (backward: boolean) =>
    trainingStepGraph(net, x, y, {
      backward,
      depth,
      expand: opts.expand,
      rankdir: opts.rankdir ?? "TB",
      title: `${name} training step${backward ? " (forward, loss and backward)" : " (forward and loss)"}`,
    });
  const g = step(opts.backward === true);
  let text: string;
  if (format === "html") {
    // the page offers both pictures: the other one is traced too
    const other = step(opts.backward !== true);
    const [fwd, bwd] = opts.backward === true ? [other, g] : [g, other];
    text = await graphHtml(fwd, {
      backward: bwd,
      showBackward: opts.backward === true,
      title: `${name} training step`,
    });
  } else text = format === "svg" ? await g.svg() : g.dot;
  const path = resolve(opts.out);
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomic(path, text);
  log(`wrote ${opts.out} (${g.program.eqns.length} equations, ${g.data.scopes.length} module scopes)`);
  return { path, eqns: g.program.eqns.length };
}
