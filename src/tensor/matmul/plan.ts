/**
 * Arguments of `encodeMatmul` and their validation: every argument checked against the others and
 * against the buffers, with defaults filled in (the plan the encoders work from).
 *
 * @module
 */
import type { BufferSlice } from "../../gpu/batch.ts";
import type { GpuContext } from "../../gpu/device.ts";
import type { MatmulPrologue, MatmulVariant } from "./kernels.ts";
import type { SkinnyOverride } from "./skinny.ts";
import type { MatmulShape } from "./reference.ts";
import type { Vec4Tuning } from "./encode.ts";
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

/** Arguments of `encodeMatmul`: the three buffers and the shape. */
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
  /** Tuning of the `vec4` kernel (tests and benchmarks); default `DEFAULT_VEC4_TUNING`. */
  vec4Tuning?: Partial<Vec4Tuning>;
  /**
   * With `accumulate`, when K is split: where the caller wants the `splits` partial products of
   * `elements` (M·N) floats each, written one after another, to sum them into C itself (autograd
   * sums every weight gradient's partials in one dispatch per backward pass); the reduction is
   * then not recorded. Returning null keeps the usual scratch buffer and reduction.
   */
  splitPartials?: (splits: number, elements: number) => BufferSlice | null;
  /**
   * Most bytes one storage binding may span; default the device's `maxStorageBufferBindingSize`
   * (tensor ops pass `TensorRuntime.storageBindingLimit`, which tests lower). When an operand
   * spans more, the product is split into blocks of rows of the operands that each fit
   * (src/tensor/matmul/blocked.ts: along N for a big transposed B, along M for a big A or C,
   * along K for a big untransposed B), each block one tiled or skinny dispatch; unbatched only.
   */
  maxBindingBytes?: number;
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
  /**
   * Most bytes one binding may span ({@link MatmulParams.maxBindingBytes}); an operand over it
   * splits the product into blocks (blocked.ts).
   */
  maxBinding: number;
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
    maxBinding: 0,
    ...(prologueA ? { prologueA } : {}),
  };
  const align = gpu.limits.minStorageBufferOffsetAlignment ?? 256;
  const device = gpu.limits.maxStorageBufferBindingSize ?? 2 ** 27;
  const maxBinding = p.maxBindingBytes ?? device;
  if (!(Number.isInteger(maxBinding) && maxBinding >= 256 && maxBinding <= device)) {
    throw new RangeError(
      `matmul: maxBindingBytes ${maxBinding} must be an integer in [256, ${device}] (the ` +
        `device's maxStorageBufferBindingSize)`,
    );
  }
  plan.maxBinding = maxBinding;
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
