/**
 * Tensors <-> safetensors bytes, and the encoding of optimizer state and checkpoints into one safetensors
 * file (tensors + string metadata), so that every file chainrule writes opens in any safetensors reader.
 *
 * Structured values (optimizer state, param groups, user extras) are stored as JSON in the metadata, with each
 * tensor inside them replaced by a reference {"$tensor": "<name>"} to a tensor of the file, named after its
 * path in the value ("optim.state.3.exp_avg"). JSON cannot hold NaN or +-Infinity (JSON.stringify writes
 * null), so such numbers are stored as {"$number": "NaN"} and restored; user object keys beginning with "$"
 * are escaped by doubling the "$" so they never read as references.
 *
 * Checkpoint layout: model tensors under "model.<name>"; optimizer tensors under "optim.*" with metadata
 * "optim.state" and "optim.param_groups"; extras under "extra.*" with metadata "extra"; and metadata
 * "chainrule.checkpoint" = "1" marking the format. Browser-compatible (file helpers are in tensors-node.ts).
 */
import { FormatError } from "../errors.ts";
import { contiguousStorage } from "../ops/shape.ts";
import { fromData } from "../prims/impl.ts";
import { Tensor } from "../tensor/tensor.ts";
import { isJsonObject, type JsonValue, parseJsonStrict } from "./json-strict.ts";
import type { RawTensor } from "./raw.ts";
import { parseSafetensors, serializeSafetensors } from "./safetensors.ts";
import { setEntry } from "./raw.ts";

/**
 * The shape of an optimizer's state dict (structurally the same as optim's `Optimizer.stateDict()`): per
 * parameter id, named tensors and numbers; and the param groups' hyperparameters.
 */
export interface OptimizerStateDict {
  state: Record<string, Record<string, Tensor | number>>;
  paramGroups: Record<string, unknown>[];
}

/** Tensors plus string metadata: what one safetensors file holds. */
export interface TensorsWithMetadata {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

/** What a checkpoint holds: model weights, optionally optimizer state and any JSON-able extras. */
export interface Checkpoint {
  model: Record<string, Tensor>;
  optimizer?: OptimizerStateDict;
  /** Epoch, step, losses, config... Values may be JSON values or tensors (at any depth). */
  extra?: Record<string, unknown>;
}

/** Marker metadata key of checkpoints, and the format version. */
export const CHECKPOINT_KEY = "chainrule.checkpoint";
const CHECKPOINT_VERSION = "1";

/** The RawTensor holding a contiguous copy of `t` (detached; works for tracers and views). */
function toRaw(t: Tensor): RawTensor {
  return { dtype: t.dtype, shape: [...t.shape], data: contiguousStorage(t, "toRaw") };
}

/**
 * Serialize named tensors (and optional string metadata) to safetensors bytes. Tensors are read as values
 * (detached, made contiguous); bool is stored as BOOL, int32 as I32, float32/float64 as F32/F64,
 * float16/bfloat16 as F16/BF16 (their bit patterns).
 *
 * @example
 * const bytes = tensorsToSafetensors({ "fc.weight": w, "fc.bias": b }, { epoch: "3" });
 */
export function tensorsToSafetensors(
  tensors: Record<string, Tensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const raw: Record<string, RawTensor> = {};
  for (const [name, t] of Object.entries(tensors)) {
    if (!(t instanceof Tensor)) {
      throw new FormatError(`tensorsToSafetensors: entry '${name}' is not a Tensor (got ${describe(t)})`);
    }
    setEntry(raw, name, toRaw(t));
  }
  return serializeSafetensors(raw, metadata);
}

/**
 * Parse safetensors bytes into tensors and metadata. Files from other tools are accepted as parseSafetensors
 * reads them (F16/BF16 as float16/bfloat16 tensors, small integer types to int32).
 *
 * @example
 * const { tensors, metadata } = safetensorsToTensors(bytes);
 * model.loadStateDict(tensors);
 */
export function safetensorsToTensors(bytes: Uint8Array): TensorsWithMetadata {
  const parsed = parseSafetensors(bytes);
  const tensors: Record<string, Tensor> = {};
  for (const [name, r] of Object.entries(parsed.tensors)) {
    setEntry(tensors, name, fromData(r.data, r.shape, r.dtype));
  }
  return { tensors, metadata: parsed.metadata };
}

// ---- structured values <-> JSON with tensor references --------------------------------------------------

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return (v as object).constructor?.name ?? "an object";
  return typeof v;
}

/**
 * Encode `value` as JSON text, moving every Tensor in it to `tensors` under `${prefix}${path}` (path segments
 * joined by "."). Two tensors whose paths collide (keys containing ".") are an error, as are values JSON
 * cannot represent (functions, bigints, symbols, class instances other than Tensor).
 */
export function encodeValue(value: unknown, prefix: string, tensors: Record<string, Tensor>): string {
  const walk = (v: unknown, path: string): unknown => {
    if (v instanceof Tensor) {
      if (Object.hasOwn(tensors, path)) {
        throw new FormatError(
          `encodeValue: two tensors map to the name '${path}' (keys containing '.' collide)`,
        );
      }
      setEntry(tensors, path, v);
      return { $tensor: path };
    }
    if (typeof v === "number") return Number.isFinite(v) ? v : { $number: String(v) };
    if (v === null || typeof v === "string" || typeof v === "boolean") return v;
    const sep = path === "" ? "" : ".";
    if (Array.isArray(v)) return v.map((x, i) => walk(x, `${path}${sep}${i}`));
    if (typeof v === "object" && [Object.prototype, null].includes(Object.getPrototypeOf(v))) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        if (x === undefined) continue; // as JSON.stringify does
        setEntry(out, k.startsWith("$") ? `$${k}` : k, walk(x, `${path}${sep}${k}`));
      }
      return out;
    }
    throw new FormatError(
      `encodeValue: cannot store ${describe(v)} at '${path}' (expected tensors, numbers, strings, booleans, null, arrays or plain objects)`,
    );
  };
  return JSON.stringify(walk(value, prefix));
}

/**
 * Inverse of {@link encodeValue}: parse `json`, resolving tensor references in `tensors`. The JSON comes from
 * a file, so it is parsed strictly (duplicate keys are errors) with bounded nesting (64 levels; deeper JSON
 * would otherwise overflow the stack of a recursive walk), and every error names the metadata key.
 */
export function decodeValue(json: string, tensors: Record<string, Tensor>, what: string): unknown {
  const parsed = parseJsonStrict(json, `decodeValue: metadata '${what}'`);
  const walk = (v: JsonValue): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (!isJsonObject(v)) return v;
    const keys = [...v.keys()];
    if (keys.length === 1 && keys[0] === "$tensor") {
      const name = v.get("$tensor");
      if (typeof name !== "string" || !Object.hasOwn(tensors, name)) {
        throw new FormatError(
          `decodeValue: metadata '${what}' refers to a tensor ${JSON.stringify(name)} the file lacks`,
        );
      }
      return tensors[name];
    }
    if (keys.length === 1 && keys[0] === "$number") {
      const s = v.get("$number");
      if (typeof s !== "string" || !["NaN", "Infinity", "-Infinity"].includes(s)) {
        throw new FormatError(`decodeValue: metadata '${what}' has a bad number ${JSON.stringify(s)}`);
      }
      return Number(s);
    }
    const out: Record<string, unknown> = {};
    for (const [k, x] of v) {
      if (k.startsWith("$") && !k.startsWith("$$")) {
        throw new FormatError(`decodeValue: metadata '${what}' has an unknown marker key '${k}'`);
      }
      setEntry(out, k.startsWith("$$") ? k.slice(1) : k, walk(x));
    }
    return out;
  };
  return walk(parsed);
}

// ---- optimizer state ----------------------------------------------------------------------------------------

/**
 * Flatten an optimizer state dict to safetensors content: tensor state becomes tensors named
 * `${prefix}state.<id>.<key>` (e.g. "state.3.exp_avg"); the state's structure and numbers go to metadata
 * `${prefix}state` and the param groups to `${prefix}param_groups`, as JSON.
 *
 * @example
 * const { tensors, metadata } = encodeOptimizerState(opt.stateDict());
 * const bytes = tensorsToSafetensors(tensors, metadata);
 */
export function encodeOptimizerState(sd: OptimizerStateDict, prefix = ""): TensorsWithMetadata {
  if (sd === null || typeof sd !== "object" || !Array.isArray(sd.paramGroups)) {
    throw new FormatError("encodeOptimizerState: expected { state: {...}, paramGroups: [...] }");
  }
  const tensors: Record<string, Tensor> = {};
  const metadata: Record<string, string> = {};
  setEntry(metadata, `${prefix}state`, encodeValue(sd.state, `${prefix}state`, tensors));
  setEntry(metadata, `${prefix}param_groups`, encodeValue(sd.paramGroups, `${prefix}param_groups`, tensors));
  return { tensors, metadata };
}

/**
 * Rebuild an optimizer state dict from {@link encodeOptimizerState}'s output (or a file holding it; other
 * tensors and metadata keys are ignored).
 *
 * @example
 * opt.loadStateDict(decodeOptimizerState(safetensorsToTensors(bytes)));
 */
export function decodeOptimizerState(content: TensorsWithMetadata, prefix = ""): OptimizerStateDict {
  const { tensors, metadata } = content;
  for (const key of [`${prefix}state`, `${prefix}param_groups`]) {
    if (!Object.hasOwn(metadata, key)) {
      throw new FormatError(
        `decodeOptimizerState: metadata has no '${key}' entry; this is not optimizer state`,
      );
    }
  }
  const state = decodeValue(metadata[`${prefix}state`], tensors, `${prefix}state`);
  const paramGroups = decodeValue(metadata[`${prefix}param_groups`], tensors, `${prefix}param_groups`);
  if (state === null || typeof state !== "object" || Array.isArray(state) || !Array.isArray(paramGroups)) {
    throw new FormatError(
      `decodeOptimizerState: '${prefix}state' must be an object and '${prefix}param_groups' an array`,
    );
  }
  return {
    state: state as OptimizerStateDict["state"],
    paramGroups: paramGroups as Record<string, unknown>[],
  };
}

// ---- checkpoints --------------------------------------------------------------------------------------------

/**
 * Encode a checkpoint (model weights, optional optimizer state and extras) as one safetensors file.
 *
 * @example
 * const bytes = checkpointToSafetensors({ model: model.stateDict(), optimizer: opt.stateDict(), extra: { epoch: 3 } });
 */
export function checkpointToSafetensors(ckpt: Checkpoint): Uint8Array {
  const tensors: Record<string, Tensor> = {};
  const metadata: Record<string, string> = {};
  setEntry(metadata, CHECKPOINT_KEY, CHECKPOINT_VERSION);
  for (const [name, t] of Object.entries(ckpt.model)) {
    if (!(t instanceof Tensor)) {
      throw new FormatError(`checkpoint: model entry '${name}' is not a Tensor (got ${describe(t)})`);
    }
    setEntry(tensors, `model.${name}`, t);
  }
  if (ckpt.optimizer !== undefined) {
    const enc = encodeOptimizerState(ckpt.optimizer, "optim.");
    for (const [k, t] of Object.entries(enc.tensors)) setEntry(tensors, k, t);
    for (const [k, v] of Object.entries(enc.metadata)) setEntry(metadata, k, v);
  }
  if (ckpt.extra !== undefined) setEntry(metadata, "extra", encodeValue(ckpt.extra, "extra", tensors));
  return tensorsToSafetensors(tensors, metadata);
}

/**
 * Decode a checkpoint written by {@link checkpointToSafetensors}. `metadata` is the file's raw metadata.
 *
 * @example
 * const { model, optimizer, extra } = safetensorsToCheckpoint(bytes);
 */
export function safetensorsToCheckpoint(
  bytes: Uint8Array,
): Checkpoint & { metadata: Record<string, string> } {
  const content = safetensorsToTensors(bytes);
  const { tensors, metadata } = content;
  if (metadata[CHECKPOINT_KEY] !== CHECKPOINT_VERSION) {
    throw new FormatError(
      `loadCheckpoint: not a chainrule checkpoint (metadata '${CHECKPOINT_KEY}' is ${JSON.stringify(metadata[CHECKPOINT_KEY])}, expected "${CHECKPOINT_VERSION}"); use loadSafetensors for plain tensor files`,
    );
  }
  const model: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(tensors)) {
    if (name.startsWith("model.")) setEntry(model, name.slice("model.".length), t);
  }
  const out: Checkpoint & { metadata: Record<string, string> } = { model, metadata };
  if (Object.hasOwn(metadata, "optim.state")) out.optimizer = decodeOptimizerState(content, "optim.");
  if (Object.hasOwn(metadata, "extra")) {
    out.extra = decodeValue(metadata.extra, tensors, "extra") as Record<string, unknown>;
  }
  return out;
}
