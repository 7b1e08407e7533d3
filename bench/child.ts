/**
 * The child side of the benchmark: one process runs one framework variant over the selected cases and prints
 * one JSON record per line, prefixed with "@@BENCH ", on stdout (anything else a library prints there is
 * ignored by the parent). bench/torch_bench.py speaks the same protocol.
 */
import { createFramework, FRAMEWORKS } from "./frameworks.ts";
import { FULL_METHOD, measure, QUICK_METHOD, type Step } from "./harness.ts";
import { isSkip, type Peer, type Skip } from "./peers/types.ts";
import {
  ATTN_LONG,
  attnInputs,
  cnnInputs,
  DISPATCH_K,
  type E2EResult,
  e2eInputs,
  lstmInputs,
  mlpInputs,
  readInputs,
  sgemmInputs,
  transformerInputs,
} from "./workloads.ts";

/** The marker that starts every record line. */
export const RECORD_PREFIX = "@@BENCH ";

function emit(rec: Record<string, unknown>): void {
  process.stdout.write(`${RECORD_PREFIX}${JSON.stringify(rec)}\n`);
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const line = msg.split("\n")[0];
  return line.length > 240 ? `${line.slice(0, 240)}...` : line;
}

type Store = ReturnType<typeof readInputs>["store"];

/** The Step (or skip) of one case, or undefined when the framework has no such API. */
function prepare(peer: Peer, store: Store, caseId: string): Step | Skip | undefined {
  const [group, arg] = caseId.split(".");
  switch (group) {
    case "sgemm": {
      const n = Number(arg);
      const { a, b } = sgemmInputs(store, n);
      return peer.sgemm?.(n, a, b);
    }
    case "mlp":
      return peer.mlpStep?.(mlpInputs(store));
    case "bf16": {
      if (arg === "mlp") return peer.bf16MlpStep?.(mlpInputs(store));
      if (arg === "cnn") return peer.bf16CnnStep?.(cnnInputs(store));
      const n = Number(arg.replace("gemm", ""));
      const { a, b } = sgemmInputs(store, n);
      return peer.bf16Gemm?.(n, a, b);
    }
    case "cnn":
      return peer.cnnStep?.(cnnInputs(store));
    case "transformer":
      return peer.transformerStep?.(transformerInputs(store));
    case "lstm":
      return peer.lstmStep?.(lstmInputs(store));
    case "vmap":
      if (arg === "perexample") return peer.perExampleGrads?.(mlpInputs(store));
      if (arg === "batched") return peer.batchedGrad?.(mlpInputs(store));
      return { skip: `unknown case ${caseId}` };
    case "attn": {
      // attn.fused, attn.composed; attn.fused1024, attn.composed1024 also report their peak memory
      if (arg === "bf16") return peer.attention?.(attnInputs(store), true, false, "bfloat16");
      const long = arg.endsWith(String(ATTN_LONG));
      return peer.attention?.(attnInputs(store, long ? ATTN_LONG : undefined), arg.startsWith("fused"), long);
    }
    case "dispatch":
      if (arg === "add") return peer.dispatchAdd?.(DISPATCH_K.add);
      if (arg === "grad") return peer.dispatchGrad?.(DISPATCH_K.grad);
      if (arg === "jvp") return peer.dispatchJvp?.(DISPATCH_K.jvp);
      return { skip: `unknown case ${caseId}` };
    default:
      return { skip: `unknown case ${caseId}` };
  }
}

/** Run one framework variant over `cases` and exit. */
export async function childMain(
  fwId: string,
  inputsPath: string,
  cases: string[],
  quick: boolean,
  full: boolean,
) {
  const spec = FRAMEWORKS.find((f) => f.id === fwId);
  if (spec === undefined) {
    emit({ type: "unavailable", fw: fwId, reason: `unknown framework id '${fwId}'` });
    process.exit(0);
  }
  let created: Awaited<ReturnType<typeof createFramework>>;
  try {
    created = await createFramework(spec, { quick, full });
  } catch (e) {
    created = { unavailable: firstLine(e) };
  }
  if ("unavailable" in created) {
    emit({ type: "unavailable", fw: fwId, reason: created.unavailable });
    process.exit(0);
  }
  const { peer, label, version, notes } = created;
  emit({ type: "info", fw: fwId, label, version, notes });
  const { store } = readInputs(inputsPath);
  const method = quick ? QUICK_METHOD : FULL_METHOD;
  for (const caseId of cases) {
    try {
      if (caseId === "e2e.mlp") {
        if (peer.e2e === undefined) continue;
        const cpu0 = process.cpuUsage();
        const r: E2EResult | Skip = await peer.e2e(e2eInputs(store));
        if (!isSkip(r)) {
          const used = process.cpuUsage(cpu0);
          // CPU time also covers the untimed accuracy pass; the ratio is approximate.
          r.cpu = (used.user + used.system) / 1e6 / r.seconds;
        }
        emit(
          isSkip(r)
            ? { type: "case", fw: fwId, case: caseId, skip: r.skip }
            : { type: "case", fw: fwId, case: caseId, e2e: r },
        );
        continue;
      }
      const step = prepare(peer, store, caseId);
      if (step === undefined) continue;
      if (isSkip(step)) {
        emit({ type: "case", fw: fwId, case: caseId, skip: step.skip });
        continue;
      }
      emit({ type: "case", fw: fwId, case: caseId, sample: await measure(step, method) });
    } catch (e) {
      emit({ type: "case", fw: fwId, case: caseId, error: firstLine(e) });
    }
  }
  process.exit(0);
}
