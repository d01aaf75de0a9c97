/**
 * Every differentiable op in one namespace: `ops.rmsNorm(x, g)`, `ops.crossEntropy(logits, y)`.
 *
 * @module
 */
export {
  add,
  affine,
  clamp,
  div,
  eq,
  exp,
  gelu,
  gt,
  log,
  lt,
  maximum,
  minimum,
  mul,
  neg,
  type Operand,
  pow,
  relu,
  sigmoid,
  silu,
  sqrt,
  sub,
  where,
} from "./elementwise.ts";
export { max, mean, sum, sumTo } from "./reduce.ts";
export { concat, contiguous, detach, expand, permute, reshape, slice, transpose } from "./views.ts";
export {
  crossEntropy,
  type CrossEntropyOptions,
  gatherLast,
  logSoftmax,
  softmax,
} from "./softmax.ts";
export { embedding } from "./embedding.ts";
export { layerNorm, rmsNorm, rope, type RopeOptions } from "./norm.ts";
export { matmul } from "./matmul.ts";
export { type AttentionOptions, causalSelfAttention } from "./attention.ts";
