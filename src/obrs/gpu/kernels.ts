/**
 * The OBRS kernels, imported as text so that `deno compile` embeds them. Kernels that draw random
 * numbers get `kernels/rng.wgsl` prepended (WGSL has no includes).
 *
 * @module
 */
import type { Kernel } from "../../gpu/pipelines.ts";
import rngSource from "../../../kernels/rng.wgsl" with { type: "text" };
import rngCheckSource from "../../../kernels/obrs_rng_check.wgsl" with { type: "text" };
import logSoftmaxSource from "../../../kernels/logsoftmax.wgsl" with { type: "text" };
import topkKeysSource from "../../../kernels/topk_keys.wgsl" with { type: "text" };
import topkStreamSource from "../../../kernels/topk_stream.wgsl" with { type: "text" };
import topkSplitSource from "../../../kernels/topk_split.wgsl" with { type: "text" };
import topkSortSource from "../../../kernels/topk_sort.wgsl" with { type: "text" };
import gatherSource from "../../../kernels/obrs_gather.wgsl" with { type: "text" };
import rowSource from "../../../kernels/obrs_row.wgsl" with { type: "text" };
import zExactSource from "../../../kernels/obrs_zexact.wgsl" with { type: "text" };
import batchSource from "../../../kernels/obrs_batch.wgsl" with { type: "text" };

/** hash3 / uniform_at written out for (seed, stream + i / 7, i): the bit-for-bit RNG check. */
export const rngCheckKernel: Kernel = { name: "obrs_rng_check", code: rngSource + rngCheckSource };
/** Row log-sum-exp (`lse`) and log-softmax (`apply`). */
export const logSoftmaxKernel: Kernel = { name: "logsoftmax", code: logSoftmaxSource };
/**
 * Fused row pass: log-sum-exp, top-k, sampled-token log-prob, non-finite flags (or, with SEGS > 1,
 * the same per row segment, for {@link topkSplitKernel}).
 */
export const topkStreamKernel: Kernel = {
  name: "topk_stream",
  code: topkKeysSource + topkStreamSource,
};
/** Merge of the split-row pass's per-segment top-k and (max, Σ exp) partials (`merge`). */
export const topkSplitKernel: Kernel = {
  name: "topk_split",
  code: topkKeysSource + topkSplitSource,
};
/** Top-k for any k by a bitonic sort in global scratch (`init`, `step`, `emit`). */
export const topkSortKernel: Kernel = { name: "topk_sort", code: topkSortSource };
/** Log-probs at given ids (`gather`) and packing of captured log-probs (`pack_sampled`). */
export const gatherKernel: Kernel = { name: "obrs_gather", code: gatherSource };
/** Per row: Z_approx over the top-k union, acceptance and Bernoulli mask. */
export const obrsRowKernel: Kernel = { name: "obrs_row", code: rngSource + rowSource };
/** Per row: exact Z over the whole vocabulary. */
export const zExactKernel: Kernel = { name: "obrs_zexact", code: zExactSource };
/** One workgroup: ᾱ, κ, weights, baselines and statistics. */
export const obrsBatchKernel: Kernel = { name: "obrs_batch", code: batchSource };
