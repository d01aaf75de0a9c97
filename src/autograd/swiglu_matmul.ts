/**
 * The SwiGLU MLP's down projection with its gate in front: `swiglu(x) · w` for the joined gate/up
 * projection `x` [..., 2I] (gate in the first I columns, up in the last I) and `w` [I, N] (the
 * down weight read as `wDown.transpose()`).
 *
 * @module
 */
import type { Tensor } from "../tensor/mod.ts";
import { matmul } from "./matmul.ts";
import { swigluJoined } from "./swiglu.ts";

/**
 * `swigluJoined(x) · w`: the MLP's gate and down projection, composed (two ops, with autograd).
 *
 * @example
 * ```ts
 * const y = swigluMatmul(matmul(h, wGateUp.transpose()), wDown.transpose()); // [..., C]
 * ```
 */
export function swigluMatmul(x: Tensor, w: Tensor): Tensor {
  return matmul(swigluJoined(x), w);
}
