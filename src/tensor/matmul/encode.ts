/**
 * Recording a (batched, transposed, accumulating) f32 matmul into a {@link ComputeBatch}: the
 * choice of kernel by shape and alignment, and the dispatch grid (arguments are validated by
 * plan.ts; a product with an operand over one storage binding is recorded in blocks, blocked.ts).
 *
 * @module
 */
import { type BufferSlice, type ComputeBatch, grid } from "../../gpu/batch.ts";
import type { GpuContext } from "../../gpu/device.ts";
import {
  denseStrides,
  MATMUL_TILES,
  matmulKernel,
  matmulUniform,
  type MatmulVariant,
} from "./kernels.ts";
import { encodeBlocked, matmulBlocks } from "./blocked.ts";
import { type MatmulParams, type MatmulPlan, planMatmul } from "./plan.ts";
import { chooseSplits, encodeSplitK, type KSplit, splitK } from "./splitk.ts";
import {
  type AddRmsBindings,
  encodeSkinny,
  SKINNY_MAX_M,
  skinnyMaxM,
  skinnyObstacle,
} from "./skinny.ts";

/** The `override` constants of matmul_vec4.wgsl that trade speed, not results. */
export interface Vec4Tuning {
  /** k per step: 8 or 16. */
  BK: number;
  /** Row pad of the workgroup tiles in vec4: 0 or 1. */
  PAD: number;
  /** Tile rows walked together for L2 reuse (1: row-major order). */
  GROUP_M: number;
  /** The hand-unrolled kernel (matmul_vec4.wgsl) or the looped one (matmul_vec4_loop.wgsl). */
  unrolled: boolean;
  /**
   * K-start stagger (unrolled kernel only): 0 or 1 off; S > 1 starts each of S consecutive
   * workgroups at a different 1/S of its K range (wrapping round), so that they do not all read
   * the same K offset of A and B at once. Reorders the sum over k, nothing else.
   */
  STAGGER: number;
}

/**
 * The tuning `encodeMatmul` uses: 128×128×8 with padded tiles (17 KB of workgroup memory, which
 * every device offers) walked in groups of 8 tile rows. `bench/matmul/main.ts` weighs the others.
 */
export const DEFAULT_VEC4_TUNING: Readonly<Vec4Tuning> = {
  BK: 8,
  PAD: 1,
  GROUP_M: 8,
  unrolled: true,
  STAGGER: 0,
};

/** Largest {@link Vec4Tuning.STAGGER}. */
export const VEC4_MAX_STAGGER = 64;

/** Bytes of workgroup memory the vec4 kernel needs with `tuning`. */
export function vec4WorkgroupBytes(tuning: Pick<Vec4Tuning, "BK" | "PAD">): number {
  return 2 * 2 * tuning.BK * (32 + tuning.PAD) * 16;
}

function vec4Tuned(gpu: GpuContext, partial: Partial<Vec4Tuning> = {}): Vec4Tuning {
  const t = { ...DEFAULT_VEC4_TUNING, ...partial };
  if (t.BK !== 8 && t.BK !== 16) {
    throw new RangeError(`matmul: vec4 BK must be 8 or 16, got ${t.BK}`);
  }
  if (t.PAD !== 0 && t.PAD !== 1) {
    throw new RangeError(`matmul: vec4 PAD must be 0 or 1, got ${t.PAD}`);
  }
  if (!Number.isInteger(t.GROUP_M) || t.GROUP_M < 1) {
    throw new RangeError(`matmul: vec4 GROUP_M must be a positive integer, got ${t.GROUP_M}`);
  }
  if (!Number.isInteger(t.STAGGER) || t.STAGGER < 0 || t.STAGGER > VEC4_MAX_STAGGER) {
    throw new RangeError(
      `matmul: vec4 STAGGER must be an integer in 0..${VEC4_MAX_STAGGER}, got ${t.STAGGER}`,
    );
  }
  if (t.STAGGER > 1 && !t.unrolled) {
    throw new RangeError("matmul: vec4 STAGGER > 1 needs the unrolled kernel (unrolled: true)");
  }
  const need = vec4WorkgroupBytes(t), have = gpu.limits.maxComputeWorkgroupStorageSize ?? 16384;
  if (need > have) {
    throw new RangeError(
      `matmul: vec4 with BK=${t.BK} PAD=${t.PAD} needs ${need} bytes of workgroup memory, ` +
        `this device offers ${have}`,
    );
  }
  return t;
}

/**
 * Why the `vec4` kernel cannot run this product, or undefined when it can: it reads whole vec4
 * rows, so the contiguous dimension of each stored matrix and each batch stride must be a
 * multiple of 4 floats (buffer offsets are multiples of 256 bytes already).
 */
export function vec4Obstacle(plan: MatmulPlan): string | undefined {
  const { M, N, K, transA, transB } = plan;
  const rows: Array<[string, number]> = [
    [transA ? "M (A is K×M)" : "K (A is M×K)", transA ? M : K],
    [transB ? "K (B is N×K)" : "N (B is K×N)", transB ? K : N],
    ["N (C is M×N)", N],
  ];
  if (plan.batchCount > 1) {
    rows.push(["strideA", plan.strideA], ["strideB", plan.strideB], ["strideC", plan.strideC]);
  }
  const bad = rows.filter(([, v]) => v % 4 !== 0).map(([name, v]) => `${name} = ${v}`);
  return bad.length ? `not a multiple of 4: ${bad.join(", ")}` : undefined;
}

/**
 * Fewest 128×128 output tiles (over all batch items) for which `vec4` is chosen: below it, the
 * 64×64 tiles of `tiled` give four times as many workgroups, which keeps more of a large GPU's
 * multiprocessors (132 on an H100) busy.
 */
export const VEC4_MIN_TILES = 96;

function vec4Tiles(plan: MatmulPlan): number {
  return Math.ceil(plan.M / 128) * Math.ceil(plan.N / 128) * plan.batchCount;
}

// Fraction of a tiling's outputs that are inside C (the rest is computed and thrown away).
function tileUse(M: number, N: number, tile: number): number {
  return (M * N) / (Math.ceil(M / tile) * tile * Math.ceil(N / tile) * tile);
}

/**
 * The variant {@link encodeMatmul} uses for a validated plan, by alignment and size: `skinny` for
 * an A prologue (the only kernel that has one) or at most `skinnyMaxM` rows (default
 * {@link SKINNY_MAX_M}; unbatched, A stored M×K); `vec4` when its 128×128 tiles fill the GPU
 * without wasting much more of themselves than 64×64 tiles would (it does about twice the work per
 * workgroup-second, so up to half as well used still wins), or when too few tiles can be made up
 * by splitting a long K (which beats any tile shape); otherwise `tiled`.
 */
export function chooseMatmulVariant(plan: MatmulPlan, skinnyMaxM = SKINNY_MAX_M): MatmulVariant {
  // Only the skinny kernel reads A through a prologue; it says why when it cannot run the shape.
  if (plan.prologueA) return "skinny";
  if (plan.M <= skinnyMaxM && skinnyObstacle(plan) === undefined) return "skinny";
  if (vec4Obstacle(plan) !== undefined) return "tiled";
  const tiles = vec4Tiles(plan);
  const few = tiles < VEC4_MIN_TILES;
  // A long K over few tiles: splitting K beats any tile shape (only vec4 splits).
  if (few && plan.batchCount === 1 && chooseSplits(tiles, plan.K) > 1) return "vec4";
  if (few || 2 * tileUse(plan.M, plan.N, 128) < tileUse(plan.M, plan.N, 64)) return "tiled";
  return "vec4";
}

// The split of K for this product: forced (tests, benchmarks) or chosen by shape. The tiled and
// the unrolled vec4 kernels can split, unbatched.
function resolveSplit(
  plan: MatmulPlan,
  variant: MatmulVariant,
  tuning: Vec4Tuning | undefined,
  maxBindingBytes: number,
  forced?: number,
): KSplit {
  const none = { splits: 1, chunk: 0 };
  const can = variant === "tiled" || (variant === "vec4" && tuning?.unrolled === true);
  if (forced !== undefined) {
    if (!Number.isInteger(forced) || forced < 1) {
      throw new RangeError(`matmul: splitK must be a positive integer, got ${forced}`);
    }
    if (forced > 1 && (plan.batchCount > 1 || !can)) {
      throw new RangeError(
        "matmul: splitK > 1 needs batchCount 1 and the tiled or unrolled vec4 kernel",
      );
    }
    return forced > 1 ? splitK(plan.K, forced) : none;
  }
  if (plan.batchCount > 1 || !can) return none;
  const [tileM, tileN] = MATMUL_TILES[variant];
  const tiles = Math.ceil(plan.M / tileM) * Math.ceil(plan.N / tileN);
  // The partials must fit one binding; fewer splits than wished for is still a split.
  const fit = Math.floor(maxBindingBytes / (plan.M * plan.N * 4));
  const s = Math.min(chooseSplits(tiles, plan.K), fit);
  if (s < 2) return none;
  const split = splitK(plan.K, s);
  return split.splits <= fit ? split : none;
}

/** Floating-point operations of a matmul (2·M·N·K per batch item), for TFLOP/s figures. */
export function matmulFlops(M: number, N: number, K: number, batchCount = 1): number {
  return 2 * M * N * K * batchCount;
}

/**
 * Records C (+)= op(A)·op(B) (f32, row-major, optionally batched) into `batch`. Validates every
 * argument first and throws a RangeError naming the problem; nothing is recorded on error.
 *
 * @example
 * ```ts
 * // y[T×N] = x[T×C] · W[N×C]ᵀ, then accumulate dW[N×C] += dy[T×N]ᵀ · x[T×C]
 * encodeMatmul(batch, gpu, { a: { buffer: x }, b: { buffer: w }, c: { buffer: y },
 *   M: T, N, K: C, transB: true });
 * encodeMatmul(batch, gpu, { a: { buffer: dy }, b: { buffer: x }, c: { buffer: dw },
 *   M: N, N: C, K: T, transA: true, accumulate: true });
 * ```
 */
export function encodeMatmul(batch: ComputeBatch, gpu: GpuContext, p: MatmulParams): void {
  const plan = planMatmul(gpu, p);
  if (p.variant !== undefined && !(p.variant in MATMUL_TILES)) {
    throw new RangeError(`matmul: unknown variant ${String(p.variant)}`);
  }
  // An operand over one storage binding: the product in blocks that each fit (blocked.ts).
  const blocks = matmulBlocks(plan, gpu.limits.minStorageBufferOffsetAlignment ?? 256);
  if (blocks) {
    const rms = p.addRms;
    const writes = [p.c, ...(rms?.sum ? [rms.sum] : [])].map((s) => s.buffer);
    const reads = [p.a, p.b, ...(rms ? [rms.gain, ...(rms.r ? [rms.r] : [])] : [])];
    const aliased = writes.some((w) => reads.some((r) => r.buffer === w));
    encodeBlocked(batch, gpu, plan, blocks, { ...p, aliased });
    return;
  }
  const variant = p.variant ?? chooseMatmulVariant(plan, skinnyMaxM(gpu));
  if (plan.prologueA && variant !== "skinny") {
    throw new RangeError(`matmul: prologueA needs the skinny kernel, not ${variant}`);
  }
  const tuning = variant === "vec4" ? vec4Tuned(gpu, p.vec4Tuning) : undefined;
  if (variant === "vec4") {
    const obstacle = vec4Obstacle(plan);
    if (obstacle) {
      throw new RangeError(`matmul: the vec4 kernel cannot run this shape: ${obstacle}`);
    }
  }
  const bind = (s: BufferSlice, elements: number): BufferSlice => ({
    buffer: s.buffer,
    offset: s.offset ?? 0,
    size: elements * 4,
  });
  const a = bind(p.a, plan.extentA), b = bind(p.b, plan.extentB), c = bind(p.c, plan.extentC);
  const rms = p.addRms;
  // Without r, x stands in for r and C for the sum (bound, never read or written).
  const addRms: AddRmsBindings | undefined = rms && {
    r: rms.r ? bind(rms.r, plan.M * plan.K) : a,
    gain: bind(rms.gain, plan.K),
    sum: rms.sum ? bind(rms.sum, plan.M * plan.K) : c,
    residual: rms.r !== null,
    eps: rms.eps,
  };
  // A buffer bound writable (C, the sum) and also read-only in the same dispatch is refused by
  // WebGPU: then every binding is declared read_write.
  const writes = [c, ...(addRms ? [addRms.sum] : [])].map((s) => s.buffer);
  const reads = [a, b, ...(addRms ? [addRms.r, addRms.gain] : [])].map((s) => s.buffer);
  const aliased = writes.some((w) => reads.includes(w));
  if (variant === "skinny") {
    const force = { ...p.skinnyTiling, kSplits: p.splitK };
    encodeSkinny(batch, gpu, plan, { a, b, c, aliased, force, addRms });
    return;
  }
  const maxBinding = gpu.limits.maxStorageBufferBindingSize ?? 2 ** 27;
  const split = resolveSplit(plan, variant, tuning, maxBinding, p.splitK);
  const form = { pad: tuning?.PAD, unrolled: tuning?.unrolled };
  const constants = {
    TRANS_A: plan.transA ? 1 : 0,
    TRANS_B: plan.transB ? 1 : 0,
    ACCUMULATE: plan.accumulate ? 1 : 0,
    ...(tuning ? { BK: tuning.BK, GROUP_M: tuning.GROUP_M } : {}),
    ...(tuning && !tuning.unrolled ? { PAD: tuning.PAD } : {}),
    // Only a stagger that is on, so the default keeps its existing pipeline key.
    ...(tuning && tuning.unrolled && tuning.STAGGER > 1 ? { STAGGER: tuning.STAGGER } : {}),
  };
  const [tileM, tileN] = MATMUL_TILES[variant];
  const maxDim = gpu.limits.maxComputeWorkgroupsPerDimension ?? 65535;
  // vec4 orders its tiles itself (grouped for L2 reuse) from a flat index on a 2-D grid.
  let [gx, gy] = [Math.ceil(plan.N / tileN), Math.ceil(plan.M / tileM)];
  if (variant === "vec4") [gx, gy] = grid(gx * gy, maxDim);
  if (gx > maxDim || gy > maxDim) {
    throw new RangeError(
      `matmul: M=${plan.M} N=${plan.N} needs a ${gx}×${gy} grid, over ${maxDim} per dimension`,
    );
  }
  if (split.splits > 1) {
    // C is not bound by the product, so the plain (not aliased) kernel serves.
    const kernel = matmulKernel(variant, form);
    const partialsAt = plan.accumulate ? p.splitPartials : undefined;
    encodeSplitK(batch, gpu, {
      ...plan,
      kernel,
      constants,
      grid: [gx, gy],
      a,
      b,
      c,
      split,
      partialsAt,
    });
    return;
  }
  const kernel = matmulKernel(variant, { ...form, aliased });
  // The batch runs along z; more items than one dimension holds go in several dispatches.
  for (let base = 0; base < plan.batchCount; base += maxDim) {
    const count = Math.min(maxDim, plan.batchCount - base);
    batch.dispatch({
      kernel,
      constants,
      bindings: [
        a,
        b,
        c,
        matmulUniform({ ...plan, batchBase: base, kChunk: 0, ...denseStrides(plan) }),
      ],
      workgroups: [gx, gy, count],
    });
  }
}
