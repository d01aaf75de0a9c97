/**
 * Reverse-mode autograd over GPU tensors: the tape, every op (also as Tensor methods), and the
 * optimizer.
 *
 * @example
 * ```ts
 * import { initTensors, randn, tensor, tidy } from "../tensor/mod.ts";
 * import { AdamW, ops } from "./mod.ts";
 * await initTensors();
 * const w = randn([2, 1], { seed: 1 }); w.requiresGrad = true;
 * const opt = new AdamW([w], { lr: 1e-2 });
 * tidy(() => { tensor([1, 2], [1, 2]).matmul(w).pow(2).mean().backward(); opt.step(); });
 * ```
 *
 * @module
 */
import "./methods.ts";
export * as ops from "./ops.ts";
export {
  backward,
  type GradSink,
  gradSink,
  isGradEnabled,
  needsGrad,
  noGrad,
  record,
  takePendingGrad,
} from "./tape.ts";
export * from "./optim.ts";
export {
  type AttentionImpl,
  attentionImpl,
  AUTO_FLASH_MAX_WORK,
  AUTO_FUSED_MAX_WORK,
  setAttentionImpl,
} from "./attention.ts";
export {
  deviceFlashTiles,
  type FusedAttentionVersion,
  fusedAttentionVersion,
  setFusedAttentionVersion,
} from "./attention_fused.ts";
export {
  beginGradSums,
  deferredGradSumsEnabled,
  deferredPartials,
  endGradSums,
  GRAD_SUMS_MAX_BYTES,
  GRAD_SUMS_SPLIT_MAX_BYTES,
  gradSumsStats,
  isDeferredPartials,
  setDeferredGradSums,
  splitPartialsInto,
} from "./grad_sums.ts";
