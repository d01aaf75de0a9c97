/**
 * GPU time and dispatches of the policy loss (src/rl/policy_loss.ts) at a training mini-batch's
 * shape, against one training step of the 0.8M anchor measured in the same process (the
 * yardstick: the loss must be negligible next to a model step). Timed with `timeBatches` (GPU
 * timestamps; wall-clock on adapters without them, which then includes a ~10 ms wait per repeat
 * and says so). Dispatches are tallied by `kernel:entryPoint` as bench/nn/dispatches.ts does.
 *
 * ```sh
 * deno run -A bench/rl/policy_loss.ts                      # B = 64, T = 256
 * deno run -A bench/rl/policy_loss.ts --B 512 --T 128 --no-yardstick
 * ```
 *
 * @module
 */
import { benchArgs, benchInt } from "../args.ts";
import { tallyDispatches, timeBatches } from "../../src/gpu/mod.ts";
import { initTensors, keep, type Tensor, tensor, tidy } from "../../src/tensor/mod.ts";
import { policyLoss, type PolicyLossResult } from "../../src/rl/policy_loss.ts";
import type { PolicyLossAggregation } from "../../src/rl/policy_loss_reference.ts";
import { ANCHORS } from "../../src/nn/anchors.ts";
import { trainAnchor } from "../nn/setup.ts";
import { Rng } from "../../src/util/rng.ts";

/** One measured row. */
export interface PolicyLossBenchRow {
  /** What was timed. */
  what: string;
  /** Median GPU milliseconds. */
  ms: number;
  /** Dispatches recorded (by kernel:entry), or null for the yardstick. */
  dispatches: Record<string, number> | null;
  /** "gpu-timestamps" or "wall-clock". */
  method: string;
}

/**
 * Times the loss's forward and backward at [B, T] for two aggregations, and (unless `yardstick`
 * is false) one training step of the 0.8M anchor at B = 4, T = 32.
 */
export async function benchPolicyLoss(
  B: number,
  T: number,
  repeats: number,
  yardstick = true,
): Promise<PolicyLossBenchRow[]> {
  const rt = await initTensors();
  const rng = new Rng(1), n = B * T;
  const f = (g: () => number) => keep(tensor(Float32Array.from({ length: n }, g), [B, T]));
  const logpRef = f(() => -Math.abs(rng.normal()) * 3);
  const logpNew = f(() => -Math.abs(rng.normal()) * 3);
  logpNew.requiresGrad = true;
  const advantages = f(() => rng.normal());
  const weight = f(() => 3 * rng.uniform());
  const mask = keep(tensor(Uint32Array.from({ length: n }, () => (rng.uniform() < 0.8 ? 1 : 0)), [
    B,
    T,
  ]));
  const one = keep(tensor(new Float32Array([1]), []));
  const inputs = { logpNew, logpRef, advantages, weight, mask };
  const rows: PolicyLossBenchRow[] = [];
  const time = (fn: () => void) =>
    timeBatches(rt.gpu, (batch) => rt.recordInto(batch, () => tidy(fn)), { repeats });
  for (const aggregation of ["token-mean", "seq-mean-token-mean"] as PolicyLossAggregation[]) {
    const fwd = () => void policyLoss(inputs, { aggregation });
    const fwdCount = tallyDispatches(() => tidy(fwd));
    const tf = await time(fwd);
    rows.push({
      what: `forward ${aggregation} [${B},${T}]`,
      ms: tf.medianMs,
      dispatches: fwdCount,
      method: tf.method,
    });
    // outside tidy: the op's saved tensors (its derivative per token) live with the loss
    const r: PolicyLossResult = policyLoss(inputs, { aggregation });
    rt.flush();
    const bwd = () => void r.loss.node!.backward(one); // the op's closure: d loss/dℓ_new
    const bwdCount = tallyDispatches(() => tidy(bwd));
    const tb = await time(bwd);
    rows.push({
      what: `backward ${aggregation} [${B},${T}]`,
      ms: tb.medianMs,
      dispatches: bwdCount,
      method: tb.method,
    });
    for (const t of [r.loss, r.stats, r.terms]) t.dispose();
  }
  for (const t of [logpRef, logpNew, advantages, weight, mask, one] as Tensor[]) t.dispose();
  if (yardstick) {
    const a = ANCHORS[0];
    const { step, disposeTraining } = await trainAnchor(rt, a, 4, 32, 2);
    const ts = await timeBatches(rt.gpu, (batch) => rt.recordInto(batch, step), {
      repeats: Math.min(repeats, 5),
    });
    rows.push({
      what: `yardstick: ${a.name} training step [4,32]`,
      ms: ts.medianMs,
      dispatches: null,
      method: ts.method,
    });
    disposeTraining();
  }
  return rows;
}

if (import.meta.main) {
  const script = "bench/rl/policy_loss.ts";
  const values = benchArgs(script, "GPU time and dispatches of the policy loss.", {
    B: { type: "string", help: "sequences", default: "64" },
    T: { type: "string", help: "positions per sequence", default: "256" },
    repeats: { type: "string", help: "timed repeats", default: "10" },
    "no-yardstick": { type: "boolean", help: "skip the 0.8M training step" },
  });
  const B = benchInt(script, values, "B", 64, { min: 1 });
  const T = benchInt(script, values, "T", 256, { min: 1 });
  const repeats = benchInt(script, values, "repeats", 10, { min: 1 });
  const rt = await initTensors();
  console.log(
    `adapter: ${rt.gpu.adapter.description}${rt.gpu.isFallback ? " (CPU fallback)" : ""}`,
  );
  for (const r of await benchPolicyLoss(B, T, repeats, !values["no-yardstick"])) {
    const d = r.dispatches
      ? ` ${Object.values(r.dispatches).reduce((a, b) => a + b, 0)} dispatches ${
        JSON.stringify(r.dispatches)
      }`
      : "";
    console.log(`${r.what.padEnd(44)} ${r.ms.toFixed(3).padStart(9)} ms (${r.method})${d}`);
  }
}
