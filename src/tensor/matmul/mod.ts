/**
 * f32 matrix multiplication on the GPU: C (+)= op(A)·op(B), batched, with either operand
 * transposed, recorded into a {@link ComputeBatch}; and its float64 reference.
 *
 * @example
 * ```ts
 * const batch = new ComputeBatch(gpu);
 * encodeMatmul(batch, gpu, { a: { buffer: a }, b: { buffer: b }, c: { buffer: c }, M, N, K });
 * batch.submit();
 * ```
 *
 * @module
 */
export {
  chooseMatmulVariant,
  DEFAULT_VEC4_TUNING,
  encodeMatmul,
  matmulFlops,
  VEC4_MAX_STAGGER,
  VEC4_MIN_TILES,
  vec4Obstacle,
  type Vec4Tuning,
  vec4WorkgroupBytes,
} from "./encode.ts";
export { type AddRmsOperands, type MatmulParams, type MatmulPlan, planMatmul } from "./plan.ts";
export { type BlockedJob, encodeBlocked, type MatmulBlocks, matmulBlocks } from "./blocked.ts";
export {
  denseStrides,
  type KernelForm,
  MATMUL_TILES,
  matmulKernel,
  type MatmulPrologue,
  type MatmulUniform,
  matmulUniform,
  type MatmulVariant,
} from "./kernels.ts";
export {
  chooseSplits,
  type KSplit,
  splitK,
  SPLITK_MAX,
  SPLITK_MIN_CHUNK,
  SPLITK_MIN_K,
  SPLITK_SLAB,
  SPLITK_TARGET_WORKGROUPS,
} from "./splitk.ts";
export {
  type AddRmsBindings,
  chooseSkinnyTiling,
  encodeSkinny,
  SKINNY_COST,
  SKINNY_FALLBACK_TILING,
  SKINNY_MAX_M,
  SKINNY_MAX_M_FALLBACK,
  SKINNY_MIN_CHUNK,
  SKINNY_ROWS,
  skinnyCost,
  skinnyMaxM,
  skinnyObstacle,
  type SkinnyOverride,
  type SkinnyTiling,
  skinnyVec4,
  withSkinnyMaxM,
} from "./skinny.ts";
export { matmulReference, type MatmulShape } from "./reference.ts";
export { checkMatmul, type MatmulCheck, prepareMatmulCheck } from "./check.ts";
