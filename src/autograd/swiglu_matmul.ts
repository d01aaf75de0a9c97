/**
 * The SwiGLU MLP's down projection with its gate in front: `swiglu(x) · w` for the joined gate/up
 * projection `x` [..., 2I] (gate in the first I columns, up in the last I) and `w` [I, N] (the
 * down weight read as `wDown.transpose()`; a batched w is multiplied as `matmul` does, composed).
 *
 * In a decode step (few rows, no gradient, on a GPU) the skinny matmul reads A through the SwiGLU
 * prologue (kernels/matmul_skinny_swiglu.wgsl), so neither the swiglu dispatch nor its [rows, I]
 * intermediate exists; the product is one dispatch, plus a split-K reduction where the skinny
 * planner splits K (as it does for the plain product). Anywhere else it is `matmul(swigluJoined(x), w)`, with autograd.
 *
 * @module
 */
import { encodeMatmul, SKINNY_ROWS, skinnyMaxM } from "../tensor/matmul/mod.ts";
import type { SkinnyOverride } from "../tensor/matmul/mod.ts";
import { empty, materialize, runtime, type Tensor } from "../tensor/mod.ts";
import { fmtShape } from "../tensor/shape.ts";
import { matmul } from "./matmul.ts";
import { swigluJoined } from "./swiglu.ts";
import { isGradEnabled, needsGrad } from "./tape.ts";

/** Options of {@link swigluMatmul} (tests and benchmarks). */
export interface SwigluMatmulOptions {
  /**
   * true: the fused kernel, or an error saying why it cannot run (a gradient is needed, too many
   * rows, ...), on any adapter; false: the composed ops. Default: fused when it can run and the
   * adapter takes the skinny kernel for this many rows (`skinnyMaxM`: not on a CPU adapter).
   */
  fused?: boolean;
  /** Forced tiling of the fused kernel (column groups, K slices across workgroups, prefetch). */
  skinnyTiling?: SkinnyOverride;
}

// w as the kernel's B: contiguous [I, N] (stored K×N), or the transpose of a contiguous [N, I]
// (stored N×K, transB) bindable where it starts; anything else is copied first.
function weightOperand(w: Tensor): { t: Tensor; transB: boolean } {
  if (w.isContiguous) return { t: w, transB: false };
  const [rows, cols] = w.shape;
  const transposed = w.isBindableOffset && (rows === 1 || w.strides[0] === 1) &&
    (cols === 1 || w.strides[1] === rows);
  return transposed ? { t: w, transB: true } : { t: materialize(w), transB: false };
}

/**
 * Why `swigluMatmul(x, w)` would not take the fused kernel now, or undefined when it would
 * (`forced`: as with `{ fused: true }`, on any adapter). Shapes must already be valid.
 *
 * @example
 * ```ts
 * swigluFusedObstacle(x, w); // "a gradient is needed" while training
 * ```
 */
export function swigluFusedObstacle(x: Tensor, w: Tensor, forced = false): string | undefined {
  if (isGradEnabled() && (needsGrad(x) || needsGrad(w))) return "a gradient is needed";
  if (w.rank !== 2) return `w ${fmtShape(w.shape)} is batched (the kernel takes one matrix)`;
  const rows = x.size / x.shape[x.rank - 1];
  const [I, N] = w.shape;
  if (!(rows > 0 && I > 0 && N > 0)) return "the product is empty";
  const limit = forced ? SKINNY_ROWS : skinnyMaxM(runtime().gpu);
  if (rows > limit) {
    return forced
      ? `${rows} rows are over the skinny kernel's ${SKINNY_ROWS}`
      : `${rows} rows are over this adapter's skinny limit of ${limit}`;
  }
  // llvmpipe ran the fused kernel 1.3-1.9x slower than the composed ops at the 0.8M anchor's
  // decode shapes (bench/matmul/swiglu_down.ts, add_rms_qkv.ts --small; BENCHMARKS.md).
  if (!forced && runtime().gpu.isFallback) {
    return "a CPU adapter (the composed ops are faster there)";
  }
  return undefined;
}

function checkShapes(x: Tensor, w: Tensor): void {
  x.expectDtype("swigluMatmul", "f32");
  w.expectDtype("swigluMatmul", "f32");
  const cols = x.rank >= 1 ? x.shape[x.rank - 1] : NaN;
  if (x.rank < 2 || w.rank < 2 || cols % 2 !== 0 || w.shape[w.rank - 2] !== cols / 2) {
    throw new RangeError(
      `swigluMatmul: x ${fmtShape(x.shape)} must be [..., 2I] (gate, then up) and w ` +
        `${fmtShape(w.shape)} must be [..., I, N]`,
    );
  }
}

/**
 * `swigluJoined(x) · w`: the MLP's gate and down projection. One skinny-matmul dispatch reading A
 * through SwiGLU's gate when no gradient is needed and x has few rows (a decode step on a GPU);
 * otherwise the two ops composed, with autograd. Both compute silu(gate)·up with the same f32
 * expression; the sums over I may differ in rounding (the composed product may take another
 * kernel or tiling).
 *
 * @example
 * ```ts
 * const y = swigluMatmul(matmul(h, wGateUp.transpose()), wDown.transpose()); // [..., C]
 * const z = noGrad(() => swigluMatmul(x, w, { fused: true })); // the fused kernel, any adapter
 * ```
 */
export function swigluMatmul(x: Tensor, w: Tensor, options: SwigluMatmulOptions = {}): Tensor {
  checkShapes(x, w);
  const forced = options.fused === true;
  const why = options.fused === false ? "composed on request" : swigluFusedObstacle(x, w, forced);
  if (why !== undefined) {
    if (forced) throw new RangeError(`swigluMatmul: the fused kernel cannot run: ${why}`);
    return matmul(swigluJoined(x), w);
  }
  const I = w.shape[0], N = w.shape[1];
  const M = x.size / (2 * I);
  const a = materialize(x);
  const b = weightOperand(w);
  const out = empty([...x.shape.slice(0, -1), N], "f32", "swigluMatmul");
  runtime().encode((batch, gpu) =>
    encodeMatmul(batch, gpu, {
      a: { buffer: a.storageBuffer, offset: a.offset * 4 },
      b: { buffer: b.t.storageBuffer, offset: b.t.offset * 4 },
      c: { buffer: out.storageBuffer, offset: out.offset * 4 },
      M,
      N,
      K: I,
      transB: b.transB,
      variant: "skinny",
      prologueA: "swiglu",
      skinnyTiling: options.skinnyTiling,
      splitK: options.skinnyTiling?.kSplits,
    })
  );
  return out;
}
