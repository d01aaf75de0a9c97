/**
 * The matmul for few rows (kernels/matmul_skinny.wgsl): C (+)= A·op(B) with M ≤ 64, as in every
 * matmul of a decode step (M = batch rows × 1 token, B a weight read as `w.transpose()`). Which
 * products take it ({@link SKINNY_MAX_M}), how its work is cut ({@link chooseSkinnyTiling}), and
 * how it is recorded.
 *
 * @module
 */
import type { BufferSlice, ComputeBatch } from "../../gpu/batch.ts";
import type { GpuContext } from "../../gpu/device.ts";
import type { KernelConstants } from "../../gpu/pipelines.ts";
import type { MatmulPlan } from "./plan.ts";
import { denseStrides, matmulKernel, type MatmulPrologue, matmulUniform } from "./kernels.ts";
import { encodeSplitK, splitK } from "./splitk.ts";

/**
 * Largest M for which `encodeMatmul` picks the skinny kernel (unbatched, A not transposed; 0
 * turns it off). At M = 64 the tiled kernels give N/64 (64×64 tiles) or N/128 workgroups: 8–24
 * for the 29M anchor's decode matmuls on a 132-SM H100, each walking all of K with one barrier
 * per 16 k. The skinny kernel gives N/BN workgroups (64–130 there), no barrier in its k loop, and
 * reads each weight once from memory; every workgroup rereads A (M·K floats, ≤ 384 KB at the
 * anchors) from L2, which {@link chooseSkinnyTiling} weighs. 64 is also the kernel's own limit.
 */
export const SKINNY_MAX_M = 64;

/**
 * The same limit on a CPU (fallback) adapter: also 64, with {@link SKINNY_FALLBACK_TILING}.
 * llvmpipe runs a dispatch's workgroups a few at a time across the CPU's threads, so the tiling
 * planned for an H100 (many narrow workgroups, K split) loses there, but the widest one wins at
 * every decode shape measured, from the 0.8M anchor's to Qwen3-0.6B's: 0.8–1.6× the time of the
 * tiled kernels' for M = 64 at the anchors' widths (128–512) and 5–9× less at hidden 1024, or for
 * M = 1 (where the tiled kernels pad the row to 64). See BENCHMARKS.md, "CPU fallback".
 */
export const SKINNY_MAX_M_FALLBACK = 64;

/**
 * The tiling a CPU (fallback) adapter forces: 32 columns per workgroup and K never split (fewest
 * workgroups, each reading A once; no reduction dispatch). Tests and benchmarks may still force
 * their own.
 */
export const SKINNY_FALLBACK_TILING: Readonly<Pick<SkinnyTiling, "colGroups" | "kSplits">> = {
  colGroups: 8,
  kSplits: 1,
};

let maxMOverride: number | undefined;

/**
 * The skinny limit for this adapter: {@link SKINNY_MAX_M}, or {@link SKINNY_MAX_M_FALLBACK} on a
 * CPU, unless {@link withSkinnyMaxM} sets another.
 */
export function skinnyMaxM(gpu: { isFallback: boolean }): number {
  if (maxMOverride !== undefined) return maxMOverride;
  return gpu.isFallback ? SKINNY_MAX_M_FALLBACK : SKINNY_MAX_M;
}

/**
 * Runs `fn` (synchronously) with the skinny limit set to `rows` on every adapter (tests and
 * benchmarks: 0 records the tiled kernels and the composed decode ops, as before the skinny
 * kernel; `undefined`, the adapter's own), then restores the previous one.
 *
 * @example
 * ```ts
 * const logits = withSkinnyMaxM(0, () => decodeStep(model, tokens, cache, pos)); // composed
 * ```
 */
export function withSkinnyMaxM<T>(rows: number | undefined, fn: () => T): T {
  if (rows !== undefined && !(Number.isInteger(rows) && rows >= 0 && rows <= SKINNY_ROWS)) {
    throw new RangeError(`matmul: the skinny limit must be an integer in [0, 64], got ${rows}`);
  }
  const was = maxMOverride;
  maxMOverride = rows;
  try {
    return fn();
  } finally {
    maxMOverride = was;
  }
}

/** Rows the kernel can cover: 8 row groups of 8. */
export const SKINNY_ROWS = 64;

/** How the skinny kernel cuts a product. */
export interface SkinnyTiling {
  /** Groups of 8 rows per workgroup (1, 2, 4, 8): the fewest that cover M. */
  rowGroups: number;
  /** Groups of 4 columns per workgroup (1, 2, 4, 8): BN = 4·colGroups columns each. */
  colGroups: number;
  /** Slices of K run by separate workgroups and summed by a second dispatch (1: none). */
  kSplits: number;
}

/**
 * The GPU {@link chooseSkinnyTiling} plans for: an H100 SXM (WebGPU does not say how many
 * multiprocessors a device has). Per multiprocessor: ~32 bytes per clock from L2 and half the 128
 * FMA lanes kept busy, at ~1.75 GHz; a second (reduction) dispatch costs a few microseconds of
 * launch and barrier at these sizes. Estimates to rank tilings, not predictions.
 *
 * `swigluPerFma`: what the SwiGLU A prologue adds, in FMAs per FMA of the product. Every
 * invocation recomputes silu(gate)·up for each A element it loads, one per 4 FMAs (its 4 columns),
 * and the exp and the reciprocal run on the special-function units, 16 per clock per
 * multiprocessor against the 64 FMAs per clock assumed here: 2 × 4 clocks' worth per element.
 * The add-RMS prologue's extra work (an add, a square and a scale per A element: 3 per 4 FMAs of
 * 4 columns) is small against that and is not counted; its second read of A (r) is.
 */
export const SKINNY_COST = {
  multiprocessors: 132,
  bytesPerUs: 56e3,
  fmaPerUs: 112e3,
  reduceUs: 3,
  swigluPerFma: 2,
} as const;

/** Fewest k per slice when K is split across workgroups. */
export const SKINNY_MIN_CHUNK = 64;

/** Why the skinny kernel cannot run this product, or undefined when it can. */
export function skinnyObstacle(plan: MatmulPlan): string | undefined {
  if (plan.M > SKINNY_ROWS) return `M = ${plan.M} is over ${SKINNY_ROWS} rows`;
  if (plan.batchCount > 1) return "it is not batched (batchCount must be 1)";
  if (plan.transA) return "A must be stored M×K (transA false)";
  return undefined;
}

/**
 * Whether every 4-run the kernel reads starts on a vec4 (one 16-byte load): A's rows (K) and B's
 * stored rows (K when transB, else N) a multiple of 4 floats. Offsets are multiples of 256 bytes.
 * (With the SwiGLU prologue A's rows are 2K long and up starts K in: the same condition.)
 */
export function skinnyVec4(plan: Pick<MatmulPlan, "N" | "K" | "transB">): boolean {
  return plan.K % 4 === 0 && (plan.transB || plan.N % 4 === 0);
}

function rowGroupsFor(M: number): number {
  let g = 1;
  while (8 * g < M) g *= 2;
  return g;
}

/**
 * Estimated microseconds of a tiling under {@link SKINNY_COST} (to rank tilings), with A read as
 * stored or through `prologue`.
 */
export function skinnyCost(
  M: number,
  N: number,
  K: number,
  t: SkinnyTiling,
  prologue?: MatmulPrologue,
): number {
  const c = SKINNY_COST;
  if (prologue === "addRms" && t.kSplits > 1) return Infinity; // all of K in one workgroup
  const chunk = t.kSplits > 1 ? splitK(K, t.kSplits).chunk : K;
  const splits = Math.ceil(K / chunk);
  const BN = 4 * t.colGroups;
  const workgroups = Math.ceil(N / BN) * splits;
  // Each workgroup reads its k range of all of A (gate and up with the SwiGLU prologue, x and r
  // with the add-RMS one) and of its BN columns of B, and runs 8·rowGroups × BN × chunk FMAs (rows
  // past M too) plus the gate of its A loads (rows below M); the busiest multiprocessor runs
  // ⌈wg / SMs⌉ of them.
  const swiglu = prologue === "swiglu";
  const fma = 8 * t.rowGroups * BN * chunk + (swiglu ? c.swigluPerFma * M * BN * chunk : 0);
  const perWorkgroup = ((prologue ? 2 : 1) * M + BN) * chunk * 4 / c.bytesPerUs +
    fma / c.fmaPerUs;
  return Math.ceil(workgroups / c.multiprocessors) * perWorkgroup +
    (splits > 1 ? c.reduceUs : 0);
}

/**
 * The tiling of least {@link skinnyCost} over 4–32 columns per workgroup and 1–16 slices of K
 * (each at least {@link SKINNY_MIN_CHUNK} long), within `maxGrid` workgroups along x, with A read
 * as stored or through `prologue` (K never split with "addRms": its norm needs all of a row's k in
 * one workgroup). Ties go to fewer splits, then fewer workgroups.
 *
 * @example
 * ```ts
 * chooseSkinnyTiling(64, 1536, 512); // { rowGroups: 8, colGroups: 4, kSplits: 1 }: 96 workgroups
 * ```
 */
export function chooseSkinnyTiling(
  M: number,
  N: number,
  K: number,
  maxGrid = 65535,
  prologue?: MatmulPrologue,
): SkinnyTiling {
  const rowGroups = rowGroupsFor(M);
  let best: SkinnyTiling | undefined, bestCost = Infinity;
  const mostSplits = prologue === "addRms" ? 1 : 16;
  for (let wanted = 1; wanted <= mostSplits; wanted *= 2) {
    const kSplits = wanted > 1 ? splitK(K, wanted).splits : 1;
    if (wanted > 1 && (kSplits < 2 || Math.ceil(K / kSplits) < SKINNY_MIN_CHUNK)) continue;
    for (let colGroups = 8; colGroups >= 1; colGroups /= 2) {
      if (Math.ceil(N / (4 * colGroups)) > maxGrid) continue;
      const t = { rowGroups, colGroups, kSplits };
      const cost = skinnyCost(M, N, K, t, prologue);
      if (cost < bestCost * (1 - 1e-9)) [best, bestCost] = [t, cost];
    }
  }
  if (!best) {
    throw new RangeError(`matmul: N = ${N} needs more than ${maxGrid} skinny workgroups`);
  }
  return best;
}

/** Forced parts of a {@link SkinnyTiling} (tests, benchmarks); the rest is chosen. */
export interface SkinnyOverride extends Partial<Pick<SkinnyTiling, "colGroups" | "kSplits">> {
  /**
   * false: issue each step's loads after the previous step's FMAs instead of before them (fewer
   * registers, so more workgroups may share an SM); default true.
   */
  prefetch?: boolean;
}

// The tiling for this plan: chosen, then the forced parts checked and applied.
function resolveTiling(plan: MatmulPlan, maxGrid: number, force: SkinnyOverride): SkinnyTiling {
  const t = chooseSkinnyTiling(plan.M, plan.N, plan.K, maxGrid, plan.prologueA);
  if (force.colGroups !== undefined) {
    if (![1, 2, 4, 8].includes(force.colGroups)) {
      throw new RangeError(`matmul: skinny colGroups must be 1, 2, 4 or 8, got ${force.colGroups}`);
    }
    t.colGroups = force.colGroups;
  }
  if (force.kSplits !== undefined) {
    if (!Number.isInteger(force.kSplits) || force.kSplits < 1) {
      throw new RangeError(
        `matmul: skinny kSplits must be a positive integer, got ${force.kSplits}`,
      );
    }
    t.kSplits = force.kSplits > 1 ? splitK(plan.K, force.kSplits).splits : 1;
    if (t.kSplits > 1 && plan.prologueA === "addRms") {
      throw new RangeError(
        'matmul: the "addRms" prologue cannot split K across workgroups (its norm needs whole rows)',
      );
    }
  }
  if (Math.ceil(plan.N / (4 * t.colGroups)) > maxGrid) {
    throw new RangeError(
      `matmul: N = ${plan.N} in blocks of ${4 * t.colGroups} columns needs more than ` +
        `${maxGrid} workgroups`,
    );
  }
  return t;
}

/**
 * The add-RMS prologue's bindings (kernels/matmul_skinny_add_rms.wgsl), bound to exactly what
 * they touch: without a residual, A stands in for r and C for the sum (neither is read or written).
 */
export interface AddRmsBindings {
  r: BufferSlice;
  gain: BufferSlice;
  sum: BufferSlice;
  /** Whether r is added (and the sum written). */
  residual: boolean;
  /** The norm's eps, rounded to f32 in the kernel's parameters. */
  eps: number;
}

/** What {@link encodeSkinny} needs beyond the plan. */
export interface SkinnyJob {
  /** A, B, C bound to exactly the elements the product touches. */
  a: BufferSlice;
  b: BufferSlice;
  c: BufferSlice;
  /** C shares a buffer with A or B. */
  aliased: boolean;
  /** Forced tiling parts. */
  force?: SkinnyOverride;
  /** The add-RMS prologue's operands (with `plan.prologueA === "addRms"` only). */
  addRms?: AddRmsBindings;
  /**
   * Row strides of a block of a larger product (src/tensor/matmul/blocked.ts): A's (as `strideA`),
   * B's and C's; default dense. K is then never split across workgroups.
   */
  strides?: { ldB: number; ldC: number; ldA: number };
}

/**
 * Records the skinny product (and, with K split across workgroups, the sum of its slices) for a
 * validated plan that {@link skinnyObstacle} accepts. Returns the tiling used.
 */
export function encodeSkinny(
  batch: ComputeBatch,
  gpu: GpuContext,
  plan: MatmulPlan,
  job: SkinnyJob,
): SkinnyTiling {
  const why = skinnyObstacle(plan);
  if (why) throw new RangeError(`matmul: the skinny kernel cannot run this shape: ${why}`);
  const maxDim = gpu.limits.maxComputeWorkgroupsPerDimension ?? 65535;
  // A CPU adapter's tiling, under what the job forces (its unset parts are undefined, not absent).
  const forced = Object.fromEntries(
    Object.entries(job.force ?? {}).filter(([, v]) => v !== undefined),
  ) as SkinnyOverride;
  const force = gpu.isFallback ? { ...SKINNY_FALLBACK_TILING, ...forced } : forced;
  const t = resolveTiling(plan, maxDim, force);
  // A block's rows must also start on a vec4 for the vec4 loads (its offsets are aligned).
  const ld = job.strides;
  const scalar = !skinnyVec4(plan) || (ld !== undefined && (ld.ldA % 4 !== 0 || ld.ldB % 4 !== 0));
  const prologue = plan.prologueA;
  const addRms = job.addRms;
  if ((prologue === "addRms") !== (addRms !== undefined)) {
    throw new RangeError(
      'matmul: the skinny job needs addRms bindings with prologue "addRms" only',
    );
  }
  // A's row stride: the SwiGLU prologue reads gate and up from rows of 2K; a block's, its own.
  const rowA = job.strides?.ldA ?? (prologue === "swiglu" ? 2 * plan.K : plan.K);
  const constants: KernelConstants = {
    TRANS_B: plan.transB ? 1 : 0,
    ACCUMULATE: plan.accumulate ? 1 : 0,
    RG: t.rowGroups,
    CG: t.colGroups,
    // Only when off, so that the default keeps its pipeline key.
    ...(job.force?.prefetch === false ? { PREFETCH: 0 } : {}),
    ...(addRms ? { RESIDUAL: addRms.residual ? 1 : 0 } : {}),
  };
  const gx = Math.ceil(plan.N / (4 * t.colGroups));
  if (t.kSplits > 1) {
    if (job.strides) throw new Error("matmul: a block of a split product never splits K");
    const split = splitK(plan.K, t.kSplits);
    if (split.splits > maxDim) {
      throw new RangeError(`matmul: ${split.splits} splits exceed ${maxDim} workgroups along z`);
    }
    // C is not bound by the product (the partials are), so the plain kernel serves.
    const kernel = matmulKernel("skinny", { scalar, prologue });
    encodeSplitK(batch, gpu, {
      ...plan,
      strideA: rowA,
      kernel,
      constants,
      grid: [gx, 1],
      a: job.a,
      b: job.b,
      c: job.c,
      split,
    });
    return { ...t, kSplits: split.splits };
  }
  // The add-RMS prologue's eps travels in batchBase, which the skinny body does not read.
  const epsBits = addRms ? new Uint32Array(new Float32Array([addRms.eps]).buffer)[0] : 0;
  batch.dispatch({
    kernel: matmulKernel("skinny", { scalar, aliased: job.aliased, prologue }),
    constants,
    bindings: [
      job.a,
      job.b,
      job.c,
      matmulUniform({
        M: plan.M,
        N: plan.N,
        K: plan.K,
        strideA: rowA,
        strideB: 0,
        strideC: 0,
        batchBase: epsBits,
        kChunk: 0,
        ...denseStrides(plan),
        ...job.strides,
      }),
      ...(addRms ? [addRms.r, addRms.gain, addRms.sum] : []),
    ],
    workgroups: [gx, 1, 1],
  });
  return t;
}
