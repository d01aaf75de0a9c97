/**
 * The A/B of a fused op against its composed form, shared by the decode-fusion benches
 * (swiglu_down.ts, add_rms_qkv.ts): each way timed with GPU timestamps, interleaved as in main.ts
 * (every round runs a pass of each, in alternating order, so clock changes hit both alike), then
 * recorded once more apart to name the kernels it dispatches.
 *
 * @module
 */
import { noGrad } from "../../src/autograd/mod.ts";
import { ComputeBatch, type Dispatch } from "../../src/gpu/batch.ts";
import { timeBatches } from "../../src/gpu/timing.ts";
import { type TensorRuntime, tidy } from "../../src/tensor/mod.ts";
import { median } from "../../src/util/stats.ts";
import { interleavedSchedule } from "./main.ts";

/** A batch that remembers the names of the kernels dispatched into it. */
class SpyBatch extends ComputeBatch {
  kernels: string[] = [];
  override dispatch(d: Dispatch): this {
    this.kernels.push(d.kernel.name);
    return super.dispatch(d);
  }
}

/**
 * Median ms of one call of each of `ways`, timed as above without gradients: `perPass` calls per
 * pass (several keep the pass's own cost out of the figure on a fast GPU; 1 on a CPU adapter), a
 * pass of each way per round.
 *
 * @example
 * ```ts
 * const [composedMs, fusedMs] = await timeWays(rt, [() => f(false), () => f(true)]);
 * ```
 */
export async function timeWays(
  rt: TensorRuntime,
  ways: ReadonlyArray<() => unknown>,
  rounds: number,
  warmupRounds: number,
  perPass = rt.gpu.isFallback ? 1 : 32,
): Promise<number[]> {
  rt.flush();
  const order = interleavedSchedule(ways.length, warmupRounds, rounds);
  const warm = ways.length * warmupRounds;
  let next = 0;
  const t = await timeBatches(rt.gpu, (batch) => {
    const way = ways[order[next++]];
    // The scope frees the calls' tensors after recording; the pass still runs them.
    noGrad(() =>
      rt.recordInto(batch, () =>
        tidy(() => {
          for (let i = 0; i < perPass; i++) way();
        }))
    );
  }, { warmup: warm, repeats: ways.length * rounds });
  const times: number[][] = ways.map(() => []);
  t.samplesMs.forEach((ms, i) => times[order[warm + i]].push(ms / perPass));
  return times.map(median);
}

/**
 * Runs `way` once without gradients in a batch of its own, submitted, and returns its result with
 * the names of the kernels it dispatched.
 */
export function recordKernels<T>(
  rt: TensorRuntime,
  way: () => T,
): { result: T; kernels: string[] } {
  const spy = new SpyBatch(rt.gpu);
  const result = noGrad(() => rt.recordInto(spy, way));
  spy.submit();
  return { result, kernels: spy.kernels };
}
