/**
 * OBRS / Jackpot on the GPU: the WGSL kernels' recorders and the one library call
 * {@link jackpotWeights}. Everything here records into a `ComputeBatch` and reads back only where
 * a function's doc says so.
 *
 * @example
 * ```ts
 * import { getGpu } from "../../gpu/mod.ts";
 * import { jackpotWeights } from "./mod.ts";
 * const r = await jackpotWeights(await getGpu(), batch, { seed: 1 });
 * ```
 *
 * @module
 */
export * from "./jackpot.ts";
export * from "./inputs.ts";
export * from "./ops.ts";
export * from "./tiles.ts";
export * from "./kernels.ts";
