/**
 * Which kernels a piece of code records: every dispatch goes through `ComputeBatch.dispatch` (the
 * tensor runtime's ops and the matmul encoder alike), so wrapping it for the duration of a call
 * counts them by `kernel:entryPoint`. For tests that pin an op's dispatch count, benchmarks that
 * print a breakdown, and notebooks asking what an op costs.
 *
 * @module
 */
import { ComputeBatch, type Dispatch } from "./batch.ts";

/**
 * The dispatches recorded while `fn` runs, in order, as `kernel:entryPoint` (`main` when the
 * dispatch names no entry point). Not reentrant: one tally at a time.
 *
 * @example
 * ```ts
 * const seen = recordedDispatches(() => softmax(x));
 * console.log(seen); // ["ops_softmax:softmax_fwd4"]
 * ```
 */
export function recordedDispatches(fn: () => void): string[] {
  const seen: string[] = [];
  const inner = ComputeBatch.prototype.dispatch;
  ComputeBatch.prototype.dispatch = function (this: ComputeBatch, d: Dispatch) {
    seen.push(`${d.kernel.name}:${d.entryPoint ?? "main"}`);
    return inner.call(this, d);
  };
  try {
    fn();
  } finally {
    ComputeBatch.prototype.dispatch = inner;
  }
  return seen;
}

/**
 * The dispatches recorded while `fn` runs, counted by `kernel:entryPoint`.
 *
 * @example
 * ```ts
 * tallyDispatches(() => crossEntropy(logits, targets)); // { "ops_xent:xent_fwd4": 1, ... }
 * ```
 */
export function tallyDispatches(fn: () => void): Record<string, number> {
  const out: Record<string, number> = {};
  for (const key of recordedDispatches(fn)) out[key] = (out[key] ?? 0) + 1;
  return out;
}
