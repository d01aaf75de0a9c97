/**
 * A residual add, the RMSNorm that reads its sum, and the projection that reads the norm:
 * `s = x + r; out = rmsNorm(s, g, eps) · w`, returning both `s` (the residual stream, which the
 * next add reads) and `out`. Without `r`, `s` is `x` and `out = rmsNorm(x, g, eps) · w`.
 *
 * In a decode step (few rows, no gradient, on a GPU) the skinny matmul reads A through the add-RMS
 * prologue (kernels/matmul_skinny_add_rms.wgsl): one dispatch, which also writes `s`, where the
 * composed ops take two (`add_rms_fwd4` or `rms_fwd4`, then the product) and an [M, K]
 * intermediate. Anywhere else it is `addRmsNorm` (or `rmsNorm`) then `matmul`, with autograd: the
 * same dispatches, the same kernels.
 *
 * @module
 */
import { encodeMatmul, SKINNY_ROWS, skinnyMaxM } from "../tensor/matmul/mod.ts";
import type { SkinnyOverride } from "../tensor/matmul/mod.ts";
import { empty, materialize, opScope, runtime, type Tensor } from "../tensor/mod.ts";
import { fmtShape, sameShape } from "../tensor/shape.ts";
import { add } from "./elementwise.ts";
import { matmul } from "./matmul.ts";
import { addRmsNormInto, fusesAddRms, rmsNorm } from "./norm.ts";
import { isGradEnabled, needsGrad } from "./tape.ts";

/**
 * Longest K (hidden size) for which {@link addRmsNormMatmul} fuses by default on a GPU adapter;
 * longer rows compose (norm dispatch, then the product, which the skinny planner may split along
 * K). The fused kernel never splits K, so its cost grows with K over few workgroups while the
 * composed one pays an extra dispatch (~10 µs on an H100) and the norm's own pass. Unbounded until
 * `bench/matmul/add_rms_qkv.ts` on an H100 says otherwise: set it below the K of the first anchor
 * whose products lose (0: never fuse by default; `{ fused: true }` still forces it).
 */
export const ADD_RMS_FUSED_MAX_K: number = Number.POSITIVE_INFINITY;

/** Options of {@link addRmsNormMatmul} (tests and benchmarks). */
export interface AddRmsNormMatmulOptions {
  /**
   * true: the fused kernel, or an error saying why it cannot run (a gradient is needed, too many
   * rows, ...), on any adapter; false: the composed ops. Default: fused when it can run and the
   * adapter takes the skinny kernel for this many rows (`skinnyMaxM`: not on a CPU adapter).
   */
  fused?: boolean;
  /** Forced tiling of the fused kernel (column groups, prefetch; K is never split). */
  skinnyTiling?: Omit<SkinnyOverride, "kSplits">;
}

/** The residual stream and the projection of its normalised rows, from {@link addRmsNormMatmul}. */
export interface AddRmsNormMatmulResult {
  /** `x + r` (`x` itself without `r`). */
  sum: Tensor;
  /** `rmsNorm(x + r, g, eps) · w`: `[..., N]`. */
  out: Tensor;
}

// w as the kernel's B: contiguous [K, N] (stored K×N), or the transpose of a contiguous [N, K]
// (stored N×K, transB) bindable where it starts; anything else is copied first.
function weightOperand(w: Tensor): { t: Tensor; transB: boolean } {
  if (w.isContiguous) return { t: w, transB: false };
  const [rows, cols] = w.shape;
  const transposed = w.isBindableOffset && (rows === 1 || w.strides[0] === 1) &&
    (cols === 1 || w.strides[1] === rows);
  return transposed ? { t: w, transB: true } : { t: materialize(w), transB: false };
}

/**
 * Why `addRmsNormMatmul(x, r, g, w)` would not take the fused kernel now, or undefined when it
 * would (`forced`: as with `{ fused: true }`, on any adapter and any K; else up to `maxK`, default
 * {@link ADD_RMS_FUSED_MAX_K}). Shapes must already be valid.
 *
 * @example
 * ```ts
 * addRmsFusedObstacle(x, r, g, w); // "a gradient is needed" while training
 * ```
 */
export function addRmsFusedObstacle(
  x: Tensor,
  r: Tensor | null,
  g: Tensor,
  w: Tensor,
  forced = false,
  maxK: number = ADD_RMS_FUSED_MAX_K,
): string | undefined {
  const grads = [x, r, g, w].some((t) => t !== null && needsGrad(t));
  if (isGradEnabled() && grads) return "a gradient is needed";
  if (w.rank !== 2) return `w ${fmtShape(w.shape)} is batched (the kernel takes one matrix)`;
  const [K, N] = w.shape;
  const rows = K > 0 ? x.size / K : 0;
  if (!(rows > 0 && K > 0 && N > 0)) return "the product is empty";
  if (!forced && K > maxK) return `K = ${K} is over the fused limit of ${maxK}`;
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

function checkArgs(x: Tensor, r: Tensor | null, g: Tensor, w: Tensor, eps: number): void {
  const op = "addRmsNormMatmul";
  if (!(eps >= 0 && Number.isFinite(eps))) {
    throw new RangeError(`${op}: eps ${eps} must be finite and >= 0`);
  }
  for (const t of [x, r, g, w]) t?.expectDtype(op, "f32");
  const K = x.rank >= 1 ? x.shape[x.rank - 1] : NaN;
  if (r && !sameShape(x.shape, r.shape)) {
    throw new RangeError(
      `${op}: x ${fmtShape(x.shape)} and r ${fmtShape(r.shape)} must have the same shape`,
    );
  }
  if (
    x.rank < 2 || g.rank !== 1 || g.shape[0] !== K || w.rank < 2 || w.shape[w.rank - 2] !== K
  ) {
    throw new RangeError(
      `${op}: x ${fmtShape(x.shape)} must be [..., K] with weight g ${fmtShape(g.shape)} = [K] ` +
        `and w ${fmtShape(w.shape)} = [..., K, N]`,
    );
  }
}

/**
 * `{ sum: x + r, out: rmsNorm(x + r, g, eps) · w }` (without `r`: `{ sum: x, out:
 * rmsNorm(x, g, eps) · w }`) for x, r `[..., K]`, g `[K]`, w `[K, N]` (a weight read as
 * `wProj.transpose()`; a batched w is multiplied as `matmul` does, composed). One skinny-matmul
 * dispatch reading A through the add-RMS prologue when no gradient is needed and x has few rows
 * (a decode step on a GPU); otherwise `addRmsNorm` (or `rmsNorm`) then `matmul`, with autograd.
 * The fused kernel scales each row's sum by rstd after the product (rmsNorm(h)·w = rstd ·
 * (h·g)·w), so the two paths differ by f32 rounding; the sum is the same f32 addition, bit-equal.
 *
 * It scopes itself: the product adopts the op's temporaries (the normalised rows of the composed
 * path included), while the sum, the residual stream that outlives it, stays out.
 *
 * @example
 * ```ts
 * let { sum: x1, out: gateUp } = addRmsNormMatmul(x, attnOut, b.postNorm, wGateUp.transpose());
 * const { out: qkv } = addRmsNormMatmul(x, null, b.inputNorm, wQkv.transpose(), 1e-6);
 * ```
 */
export function addRmsNormMatmul(
  x: Tensor,
  r: Tensor | null,
  g: Tensor,
  w: Tensor,
  eps = 1e-6,
  options: AddRmsNormMatmulOptions = {},
): AddRmsNormMatmulResult {
  checkArgs(x, r, g, w, eps);
  const forced = options.fused === true;
  const why = options.fused === false
    ? "composed on request"
    : addRmsFusedObstacle(x, r, g, w, forced);
  if (why !== undefined && forced) {
    throw new RangeError(`addRmsNormMatmul: the fused kernel cannot run: ${why}`);
  }
  const fused = why === undefined;
  // The sum first, outside the op's scope: add_rms_fwd4 (or the fused kernel) writes it into a
  // tensor made here; a last axis that is not a multiple of 4 takes `add` then `rmsNorm`.
  const viaAdd = r !== null && !fused && !fusesAddRms(x, r);
  const sum = r === null ? x : viaAdd ? add(x, r) : empty(x.shape, "f32", "addRmsNorm");
  try {
    const out = opScope(() => {
      if (fused) return fusedProduct(x, r, g, w, eps, sum, options);
      const normed = r === null || viaAdd
        ? rmsNorm(sum, g, eps)
        : addRmsNormInto(x, r, g, eps, sum);
      return matmul(normed, w);
    });
    return { sum, out };
  } catch (e) {
    if (sum !== x) sum.dispose();
    throw e;
  }
}

// The fused kernel: rmsNorm(x + r, g) · w into a new tensor, x + r into `sum`.
function fusedProduct(
  x: Tensor,
  r: Tensor | null,
  g: Tensor,
  w: Tensor,
  eps: number,
  sum: Tensor,
  options: AddRmsNormMatmulOptions,
): Tensor {
  const [K, N] = w.shape;
  const M = x.size / K;
  const a = materialize(x);
  const rs = r && materialize(r);
  const gs = materialize(g);
  const b = weightOperand(w);
  const out = empty([...x.shape.slice(0, -1), N], "f32", "addRmsNormMatmul");
  const at = (t: Tensor) => ({ buffer: t.storageBuffer, offset: t.offset * 4 });
  const rt = runtime();
  rt.encode((batch, gpu) =>
    encodeMatmul(batch, gpu, {
      a: at(a),
      b: at(b.t),
      c: at(out),
      M,
      N,
      K,
      transB: b.transB,
      variant: "skinny",
      prologueA: "addRms",
      addRms: { r: rs && at(rs), gain: at(gs), sum: rs && at(sum), eps },
      skinnyTiling: options.skinnyTiling,
      splitK: 1,
      // a classifier over one binding: blocks of its rows, each through the prologue
      maxBindingBytes: rt.storageBindingLimit,
    })
  );
  return out;
}
