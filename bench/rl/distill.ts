/**
 * The distillation KL's fused kernels (src/rl/distill.ts) against the existing row kernels at the
 * same [N, V] shape: softmax, log-softmax and the fused cross-entropy (forward and backward). The
 * figure is bytes of logits moved per millisecond (each op's compulsory reads and writes of [N, V]
 * f32 arrays, per-row arrays ignored), and the dispatches each records, tallied by kernel:entry.
 * Each timed batch records `inner` copies of the op so that, on adapters without timestamps, the
 * fixed ~10 ms wait per submission weighs less (it is still included: see `method`).
 *
 * ```sh
 * deno run -A bench/rl/distill.ts                   # N = 256, V = 4096
 * deno run -A bench/rl/distill.ts --N 64 --V 151936 --inner 1 --repeats 3
 * ```
 *
 * @module
 */
import { benchArgs, benchInt } from "../args.ts";
import { tallyDispatches, timeBatches } from "../../src/gpu/mod.ts";
import { ops } from "../../src/autograd/mod.ts";
import { initTensors, keep, type Tensor, tensor, tidy } from "../../src/tensor/mod.ts";
import { distillKL } from "../../src/rl/distill.ts";
import { Rng } from "../../src/util/rng.ts";

/** One measured row. */
export interface DistillBenchRow {
  /** What was timed. */
  what: string;
  /** Median milliseconds per op (a batch's median over `inner`). */
  ms: number;
  /** [N, V] f32 arrays the op must read or write, in bytes. */
  bytes: number;
  /** Dispatches recorded, by kernel:entry. */
  dispatches: Record<string, number>;
  /** "gpu-timestamps" or "wall-clock". */
  method: string;
}

/** Times each op at [N, V]; `inner` copies per timed batch, `repeats` batches. */
export async function benchDistill(
  N: number,
  V: number,
  repeats: number,
  inner: number,
): Promise<DistillBenchRow[]> {
  const rt = await initTensors();
  const rng = new Rng(1);
  const logits = () =>
    keep(tensor(Float32Array.from({ length: N * V }, () => 2 * rng.normal()), [N, V]));
  const s = logits(), t = logits();
  s.requiresGrad = true;
  const targets = keep(tensor(Int32Array.from({ length: N }, () => rng.int(V)), [N]));
  const one = keep(tensor(new Float32Array([1]), []));
  const g = keep(tensor(new Float32Array(N * V).fill(1e-3), [N, V]));
  const M = N * V * 4; // one [N, V] f32 array
  const rows: DistillBenchRow[] = [];
  const run = async (what: string, bytes: number, fn: () => void) => {
    const dispatches = tallyDispatches(() => tidy(fn));
    const tm = await timeBatches(
      rt.gpu,
      (batch) =>
        rt.recordInto(batch, () =>
          tidy(() => {
            for (let i = 0; i < inner; i++) fn();
          })),
      { repeats, warmup: 1 },
    );
    rows.push({ what, ms: tm.medianMs / inner, bytes, dispatches, method: tm.method });
  };
  // forward ops; the backward closures are timed on a saved forward (their node), as
  // bench/rl/policy_loss.ts does
  for (const direction of ["forward", "reverse"] as const) {
    await run(`distillKL ${direction} fwd`, 2 * M, () => void distillKL(s, t, { direction }));
    const r = distillKL(s, t, { direction });
    rt.flush();
    await run(`distillKL ${direction} bwd`, 3 * M, () => void r.loss.node!.backward(one));
    for (const x of [r.loss, r.rowKl, r.stats]) x.dispose();
  }
  await run("softmax fwd", 2 * M, () => void ops.softmax(s));
  await run("logSoftmax fwd", 2 * M, () => void ops.logSoftmax(s));
  const y = ops.softmax(s);
  rt.flush();
  await run("softmax bwd", 3 * M, () => void y.node!.backward(g));
  await run("crossEntropy fwd", M, () => void ops.crossEntropy(s, targets));
  const x = ops.crossEntropy(s, targets);
  rt.flush();
  await run("crossEntropy bwd", 2 * M, () => void x.node!.backward(one));
  for (const z of [s, t, targets, one, g, y, x] as Tensor[]) z.dispose();
  return rows;
}

if (import.meta.main) {
  const script = "bench/rl/distill.ts";
  const values = benchArgs(script, "Distillation KL kernels vs softmax / cross-entropy.", {
    N: { type: "string", help: "rows", default: "256" },
    V: { type: "string", help: "vocabulary", default: "4096" },
    repeats: { type: "string", help: "timed batches", default: "5" },
    inner: { type: "string", help: "copies of the op per batch", default: "4" },
  });
  const N = benchInt(script, values, "N", 256, { min: 1 });
  const V = benchInt(script, values, "V", 4096, { min: 1 });
  const repeats = benchInt(script, values, "repeats", 5, { min: 1 });
  const inner = benchInt(script, values, "inner", 4, { min: 1 });
  const rt = await initTensors();
  console.log(
    `adapter: ${rt.gpu.adapter.description}${rt.gpu.isFallback ? " (CPU fallback)" : ""}; ` +
      `N = ${N}, V = ${V}, ${inner} ops per batch, median of ${repeats}`,
  );
  for (const r of await benchDistill(N, V, repeats, inner)) {
    const n = Object.values(r.dispatches).reduce((a, b) => a + b, 0);
    console.log(
      `${r.what.padEnd(24)} ${r.ms.toFixed(2).padStart(9)} ms  ${
        (r.bytes / r.ms / 1e6).toFixed(3).padStart(7)
      } MB/ms  (${r.method}) ${n} dispatches ${JSON.stringify(r.dispatches)}`,
    );
  }
}
