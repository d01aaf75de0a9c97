/**
 * OBRS / Jackpot on the GPU (SPEC §2–5, §8). The one call is {@link jackpotWeights}: the mask,
 * the weights and the batch statistics of one batch, with one readback (the statistics); the mask
 * and weights stay on the GPU. {@link recordJackpot} records the same work into a caller's
 * `ComputeBatch` (a trainer step, a benchmark). The kernel recorders below are the pieces, each
 * tested against the float64 reference in `src/obrs/reference/`.
 *
 * @example
 * ```ts
 * import { getGpu } from "../../gpu/mod.ts";
 * import { jackpotWeights } from "./mod.ts";
 * const r = await jackpotWeights(await getGpu(), {
 *   tokens, inf: { logits: { data: infLogits, shape: [n, v] } },
 *   newLogits: { data: newLogits, shape: [n, v] }, ref: { sampledLogp },
 * }, { lambda: 1, k: 20, seed: 7 });
 * console.log(r.stats.acceptRate, r.stats.kappa);
 * r.destroy();
 * ```
 *
 * @module
 */
export {
  decodeStats,
  type JackpotRecording,
  type JackpotResult,
  type JackpotStats,
  jackpotWeights,
  recordJackpot,
} from "./jackpot.ts";
export {
  type ActorFromLogits,
  type ActorFromTopK,
  type JackpotBatch,
  type JackpotParams,
  type LogitBlock,
  type Logits,
  type LogitsSource,
  NonFiniteInputError,
  type RowValues,
} from "./inputs.ts";
export {
  type GatherArgs,
  type LogSoftmaxArgs,
  recordGather,
  recordLogSoftmax,
  recordRowTopk,
  recordZExact,
  type RowTopkArgs,
  STREAM_MAX_K,
} from "./ops.ts";
export {
  type BoundTile,
  type PairedTile,
  pairedTiles,
  type RowTile,
  rowTiles,
  sourceTiles,
  type TileBinding,
} from "./tiles.ts";
