/**
 * Dispatches per training step and per decode step at the anchors' shapes, tallied by kernel and
 * entry point. The GPU does no work (every `dispatchWorkgroups` is a no-op, as `--host-only` in
 * bench/nn/main.ts), so the full shapes count on any machine in seconds: what is counted is what
 * the host records, which is what the step costs in dispatches on an H100.
 *
 * ```sh
 * deno run -A bench/nn/dispatches.ts                 # every anchor, step and decode
 * deno run -A bench/nn/dispatches.ts --anchors 0.8M --by-kernel
 * ```
 *
 * @module
 */
import { ComputeBatch, type Dispatch } from "../../src/gpu/mod.ts";
import { gradSumsStats, noGrad } from "../../src/autograd/mod.ts";
import { initTensors, tensor, tidy } from "../../src/tensor/mod.ts";
import { ANCHORS, GENERATE_BENCH } from "../../src/nn/anchors.ts";
import { decodeStep, KVCache } from "../../src/nn/kv_cache.ts";
import { skipGpuWork } from "./main.ts";
import { applyNnFlags, NN_FLAGS, trainAnchor } from "./setup.ts";
import { benchArgs } from "../args.ts";

/** Dispatch counts of one anchor. */
export interface DispatchCounts {
  /** Anchor name. */
  anchor: string;
  /** Dispatches of one training step (forward, backward, AdamW, zeroGrad). */
  step: number;
  /** Dispatches of one decode step of the sampling batch (no sampling kernels). */
  decode: number;
  /** The step's dispatches by `kernel:entryPoint`, most first. */
  stepByKernel: [string, number][];
  /** Bytes of the arena holding a step's deferred gradient partials (src/autograd/grad_sums.ts). */
  partialsBytes: number;
  /** The decode step's dispatches by `kernel:entryPoint`, most first. */
  decodeByKernel: [string, number][];
}

/**
 * Counts the dispatches of one training step and one decode step of each anchor in `names`; with
 * `asGpu`, as a GPU adapter would run them even on a CPU one. It leaves the process a counting
 * one (GPU work skipped, `ComputeBatch.dispatch` tallied, with `asGpu` the adapter marked as not a
 * fallback): call it in a process of its own, as the CLI below does.
 */
export async function countDispatches(
  names: readonly string[],
  asGpu = false,
): Promise<DispatchCounts[]> {
  skipGpuWork();
  const rt = await initTensors();
  // The adapter's one effect on which kernels run is the skinny matmul, off on a CPU adapter
  // (src/tensor/matmul/skinny.ts): counted as on a GPU, decode products take it.
  if (asGpu) rt.gpu.isFallback = false;
  const tally = new Map<string, number>();
  // every dispatch goes through ComputeBatch.dispatch (ops' rt.dispatch and encodeMatmul alike)
  const inner = ComputeBatch.prototype.dispatch;
  ComputeBatch.prototype.dispatch = function (this: ComputeBatch, d: Dispatch) {
    const key = `${d.kernel.name}:${d.entryPoint ?? "main"}`;
    tally.set(key, (tally.get(key) ?? 0) + 1);
    return inner.call(this, d);
  };
  const sorted = () => [...tally.entries()].sort((a, b) => b[1] - a[1]);
  const out: DispatchCounts[] = [];
  for (const name of names) {
    const a = ANCHORS.find((x) => x.name === name);
    if (!a) throw new RangeError(`dispatches: unknown anchor '${name}'`);
    const { model, step, disposeTraining } = await trainAnchor(rt, a, a.B, a.T, 2);
    tally.clear();
    step();
    const stepByKernel = sorted();
    const partialsBytes = gradSumsStats().bytes;
    rt.flush();
    disposeTraining();
    const B = GENERATE_BENCH.batch, P = GENERATE_BENCH.promptLength;
    const cache = new KVCache(model, B, P + 2);
    const tokens = tensor(new Int32Array(B).fill(3), [B]);
    tally.clear();
    noGrad(() => tidy(() => decodeStep(model, tokens, cache, P)));
    const decodeByKernel = sorted();
    rt.flush();
    tokens.dispose();
    cache.dispose();
    model.dispose();
    const total = (t: [string, number][]) => t.reduce((s, [, n]) => s + n, 0);
    out.push({
      anchor: name,
      step: total(stepByKernel),
      decode: total(decodeByKernel),
      stepByKernel,
      decodeByKernel,
      partialsBytes,
    });
  }
  return out;
}

if (import.meta.main) {
  const script = "bench/nn/dispatches.ts";
  const values = benchArgs(
    script,
    "Counts the dispatches of a training step and a decode step of each anchor (no GPU work).",
    {
      "by-kernel": { type: "boolean", help: "list the dispatches by kernel and entry point" },
      "as-gpu": {
        type: "boolean",
        help: "count as a GPU adapter runs the step (the skinny decode matmuls; no GPU needed)",
      },
      ...NN_FLAGS,
    },
  );
  const names = applyNnFlags(script, values) ?? ANCHORS.map((a) => a.name);
  for (const c of await countDispatches(names, values["as-gpu"])) {
    console.log(
      `${c.anchor}: ${c.step} dispatches per training step, ${c.decode} per decode step ` +
        `(deferred gradient partials: ${(c.partialsBytes / 2 ** 20).toFixed(1)} MiB)`,
    );
    if (values["by-kernel"]) {
      for (const [k, n] of c.stepByKernel) console.log(`  step   ${String(n).padStart(4)} ${k}`);
      for (const [k, n] of c.decodeByKernel) console.log(`  decode ${String(n).padStart(4)} ${k}`);
    }
  }
}
