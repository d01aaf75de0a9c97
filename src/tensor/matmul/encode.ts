/**
 * Recording a (batched, transposed, accumulating) f32 matmul into a {@link ComputeBatch}: argument
 * validation, the choice of kernel by shape and alignment, and the dispatch grid.
 *
 * @module
 */
import { type BufferSlice, type ComputeBatch, grid } from "../../gpu/batch.ts";
import type { GpuContext } from "../../gpu/device.ts";
import { MATMUL_TILES, matmulKernel, type MatmulPrologue, type MatmulVariant } from "./kernels.ts";
import { chooseSplits, encodeSplitK, type KSplit, splitK } from "./splitk.ts";
import {
  type AddRmsBindings,
  encodeSkinny,
  SKINNY_MAX_M,
  skinnyMaxM,
  skinnyObstacle,
  type SkinnyOverride,
} from "./skinny.ts";
import type { MatmulShape } from "./reference.ts";

/**
 * The extra operands of the "addRms" A prologue ({@link MatmulParams.addRms}): op(A) =
 * rmsNorm(A + r, gain, eps), with A + r written to `sum`.
 */
export interface AddRmsOperands {
  /** The branch output r [M, K] added to A before the norm, or null: A itself is normalised. */
  r: BufferSlice | null;
  /** The norm weight [K]. */
  gain: BufferSlice;
  /** Where A + r is written, [M, K] (its own range: never A's); null exactly when r is. */
  sum: BufferSlice | null;
  /** The norm's eps (used as f32), finite and ≥ 0. */
  eps: number;
}

/** Arguments of {@link encodeMatmul}: the three buffers and the shape. */
export interface MatmulParams extends MatmulShape {
  /** A: M×K row-major, or K×M when `transA`; M×2K with `prologueA: "swiglu"`. */
  a: BufferSlice;
  /** B: K×N row-major, or N×K when `transB`. */
  b: BufferSlice;
  /** C: M×N row-major; must not overlap A or B. */
  c: BufferSlice;
  /** Force a kernel variant (tests and benchmarks); default: chosen by shape. */
  variant?: MatmulVariant;
  /**
   * Read A through a prologue (skinny kernel only, unbatched, A not transposed). "swiglu": `a`
   * holds the joined gate/up projection x [M, 2K] (row stride 2K) and op(A)[m, k] =
   * silu(x[m, k]) · x[m, K + k], as `swigluJoined` computes it: the MLP's gate and down projection
   * without the gate's own dispatch. "addRms": op(A) = rmsNorm(A + r, gain, eps) with the
   * operands in `addRms` (A + r also written out): a residual add and the norm that reads it,
   * without their own dispatch. Never split across workgroups along K.
   */
  prologueA?: MatmulPrologue;
  /** The operands of `prologueA: "addRms"` (required with it, refused without it). */
  addRms?: AddRmsOperands;
  /**
   * Slices of K computed in parallel and summed (tiled, unrolled vec4 or skinny kernel, unbatched;
   * tests and benchmarks); default chosen by shape, 1 turns splitting off.
   */
  splitK?: number;
  /**
   * Columns per workgroup and load order of the `skinny` kernel (tests and benchmarks); default
   * by shape and prefetching. Its K slices are `splitK`.
   */
  skinnyTiling?: Omit<SkinnyOverride, "kSplits">;
  /** Tuning of the `vec4` kernel (tests and benchmarks); default {@link DEFAULT_VEC4_TUNING}. */
  vec4Tuning?: Partial<Vec4Tuning>;
  /**
   * With `accumulate`, when K is split: where the caller wants the `splits` partial products of
   * `elements` (M·N) floats each, written one after another, to sum them into C itself (autograd
   * sums every weight gradient's partials in one dispatch per backward pass); the reduction is
   * then not recorded. Returning null keeps the usual scratch buffer and reduction.
   */
  splitPartials?: (splits: number, elements: number) => BufferSlice | null;
}

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

/** The validated arguments with every default filled in. */
export interface MatmulPlan extends Required<MatmulShape> {
  /** The A prologue (see {@link MatmulParams.prologueA}); undefined: A is read as stored. */
  prologueA?: MatmulPrologue;
  /** Elements of A the product touches, from its slice's offset. */
  extentA: number;
  /** Elements of B the product touches, from its slice's offset. */
  extentB: number;
  /** Elements of C the product touches, from its slice's offset. */
  extentC: number;
}

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
    throw new RangeError(`matmul: ${name} must be a positive integer, got ${String(v)}`);
  }
  return v;
}

function stride(name: string, v: unknown, dense: number): number {
  if (v === undefined) return dense;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    throw new RangeError(`matmul: ${name} must be a non-negative integer, got ${String(v)}`);
  }
  return v;
}

function sliceBytes(s: BufferSlice): number {
  return s.size ?? s.buffer.size - (s.offset ?? 0);
}

/**
 * Checks every argument against the others and against the buffers, throwing a RangeError that
 * names the problem, and returns the arguments with defaults filled in.
 */
export function planMatmul(gpu: GpuContext, p: MatmulParams): MatmulPlan {
  const M = positiveInt("M", p.M), N = positiveInt("N", p.N), K = positiveInt("K", p.K);
  const batchCount = positiveInt("batchCount", p.batchCount ?? 1);
  const strideA = stride("strideA", p.strideA, M * K);
  const strideB = stride("strideB", p.strideB, K * N);
  const strideC = stride("strideC", p.strideC, M * N);
  if (batchCount > 1 && strideC < M * N) {
    throw new RangeError(
      `matmul: strideC ${strideC} < M·N = ${M * N} would make batch items of C overlap`,
    );
  }
  const extent = (s: number, size: number) => (batchCount - 1) * s + size;
  const prologueA = p.prologueA;
  if (prologueA !== undefined) {
    if (prologueA !== "swiglu" && prologueA !== "addRms") {
      throw new RangeError(
        `matmul: unknown prologueA ${String(prologueA)} (only "swiglu" or "addRms")`,
      );
    }
    if (batchCount > 1 || p.transA) {
      throw new RangeError(
        "matmul: prologueA needs an unbatched product with A stored row-major (batchCount 1, " +
          "transA false)",
      );
    }
  }
  if ((prologueA === "addRms") !== (p.addRms !== undefined)) {
    throw new RangeError('matmul: addRms operands go with prologueA "addRms" and only with it');
  }
  const rms = p.addRms;
  if (rms && !(Number.isFinite(rms.eps) && rms.eps >= 0)) {
    throw new RangeError(`matmul: addRms eps ${rms.eps} must be finite and >= 0`);
  }
  if (rms && (rms.r === null) !== (rms.sum === null)) {
    throw new RangeError("matmul: addRms needs both r and sum, or neither");
  }
  const plan: MatmulPlan = {
    M,
    N,
    K,
    batchCount,
    strideA,
    strideB,
    strideC,
    transA: p.transA ?? false,
    transB: p.transB ?? false,
    accumulate: p.accumulate ?? false,
    extentA: prologueA === "swiglu" ? M * 2 * K : extent(strideA, M * K),
    extentB: extent(strideB, K * N),
    extentC: extent(strideC, M * N),
    ...(prologueA ? { prologueA } : {}),
  };
  const align = gpu.limits.minStorageBufferOffsetAlignment ?? 256;
  const maxBinding = gpu.limits.maxStorageBufferBindingSize ?? 2 ** 27;
  const slices: Array<[string, BufferSlice, number]> = [
    ["a", p.a, plan.extentA],
    ["b", p.b, plan.extentB],
    ["c", p.c, plan.extentC],
  ];
  if (rms) {
    slices.push(["addRms.gain", rms.gain, K]);
    if (rms.r) slices.push(["addRms.r", rms.r, M * K]);
    if (rms.sum) slices.push(["addRms.sum", rms.sum, M * K]);
  }
  for (const [name, s, elements] of slices) {
    if (!s || !(s.buffer instanceof GPUBuffer)) {
      throw new TypeError(`matmul: ${name} must be a BufferSlice { buffer: GPUBuffer, ... }`);
    }
    const offset = s.offset ?? 0;
    if (!Number.isInteger(offset) || offset < 0 || offset % align !== 0) {
      throw new RangeError(
        `matmul: ${name}.offset ${offset} must be a non-negative multiple of ${align} bytes`,
      );
    }
    const available = sliceBytes(s);
    if (offset + available > s.buffer.size || available < 0) {
      throw new RangeError(
        `matmul: ${name} slice (offset ${offset}, size ${available}) runs past its buffer ` +
          `of ${s.buffer.size} bytes`,
      );
    }
    if (elements * 4 > available) {
      throw new RangeError(
        `matmul: ${name} needs ${elements} f32 elements (${elements * 4} bytes) for ` +
          `M=${M} N=${N} K=${K} batchCount=${batchCount}, but its slice has ${available} bytes`,
      );
    }
    if (elements * 4 > maxBinding) {
      throw new RangeError(
        `matmul: ${name} spans ${elements * 4} bytes, over this device's ` +
          `maxStorageBufferBindingSize of ${maxBinding}`,
      );
    }
  }
  // Every written range (c, and the sum) apart from every other range.
  const written = new Set(["c", "addRms.sum"]);
  for (const [wName, w, wElements] of slices.filter(([name]) => written.has(name))) {
    for (const [name, s, elements] of slices) {
      if (name === wName || s.buffer !== w.buffer) continue;
      const lo = s.offset ?? 0, hi = lo + elements * 4;
      const wLo = w.offset ?? 0, wHi = wLo + wElements * 4;
      if (lo < wHi && wLo < hi) {
        throw new RangeError(
          `matmul: ${wName} (bytes ${wLo}..${wHi}) overlaps ${name} (bytes ${lo}..${hi}) in the ` +
            `same buffer; write the ${wName === "c" ? "product" : "sum"} to a separate range`,
        );
      }
    }
  }
  return plan;
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
  const variant = p.variant ?? chooseMatmulVariant(plan, skinnyMaxM(gpu));
  if (!(variant in MATMUL_TILES)) {
    throw new RangeError(`matmul: unknown variant ${String(variant)}`);
  }
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
        new Uint32Array([
          plan.M,
          plan.N,
          plan.K,
          plan.strideA,
          plan.strideB,
          plan.strideC,
          base,
          0,
        ]),
      ],
      workgroups: [gx, gy, count],
    });
  }
}
