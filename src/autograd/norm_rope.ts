/**
 * QK-norm and rotary embedding as one op, `rope(rmsNorm(x, w))`: one kernel forward and one
 * backward (dx and the weight gradient's partials in a pass), where the composed ops take two
 * dispatches forward and three or four backward. A Qwen3-style block runs it twice per layer (its
 * queries and its keys), so at small model sizes, where a training step is dominated by the cost
 * of each dispatch, it saves about four dispatches per layer.
 *
 * @module
 */
import rowSumSource from "../../kernels/row_sum_lanes.wgsl" with { type: "text" };
import normRopeSource from "../../kernels/ops_norm_rope.wgsl" with { type: "text" };
import { grid, type Kernel } from "../gpu/mod.ts";
import { empty, f32, materialize, params, runtime, type Tensor } from "../tensor/mod.ts";
import { fmtShape } from "../tensor/shape.ts";
import { rmsNorm, rope } from "./norm.ts";
import { weightGradFromPartials } from "./reduce.ts";
import { record } from "./tape.ts";

const kernel: Kernel = { name: "ops_norm_rope", code: rowSumSource + normRopeSource };

// A workgroup's threads (kernels/ops_norm_rope.wgsl's WG), the most rotate-half pairs one lane
// holds in registers (its PMAX), and so the longest row the kernels take; longer rows (no real
// head is) run the composed ops.
const WG = 256;
const PMAX = 4;
const MAX_D = 2 * WG * PMAX;

// The backward's blocks of rows: about BLOCKS of them (two workgroups per SM of a large GPU) so
// that the [blocks, D] weight-gradient partials stay a few KB, at most MAX_STEPS row groups each
// (llvmpipe's limit of 65,535 loop iterations per invocation, with room to spare).
const BLOCKS = 256;
const MAX_STEPS = 512;

/** Options of {@link rmsNormRope}. */
export interface RmsNormRopeOptions {
  /** RMSNorm's epsilon; default 1e-6 (as {@link rmsNorm}). */
  eps?: number;
  /** Position of the first row (KV-cache decoding); default 0. */
  offset?: number;
  /** RoPE frequency base θ; default 10000 (Qwen2 uses 1e6). */
  base?: number;
  /** "bthd" (default): x is [..., T, H, D]; "bhtd": x is [..., H, T, D]. */
  layout?: "bthd" | "bhtd";
}

/**
 * RMSNorm over the last axis, then rotary position embedding: `rope(rmsNorm(x, w, eps), opts)` in
 * one dispatch (the QK-norm of Qwen3 followed by RoPE). x is [..., T, H, D] (or [..., H, T, D]
 * with `layout: "bhtd"`), w is [D], D even; the rotation is rope's "rotate half" pairing (j with
 * j + D/2, angle (offset + t)·base^(−2j/D)). A leaf weight's gradient is added to its `.grad`
 * directly, as rmsNorm's is.
 *
 * @example
 * ```ts
 * const q = rmsNormRope(reshape(matmul(h, wq.transpose()), [B, T, heads, D]), qNorm, {
 *   eps: 1e-6,
 *   offset,
 *   base: 1e6,
 * });
 * ```
 */
export function rmsNormRope(x: Tensor, weight: Tensor, opts: RmsNormRopeOptions = {}): Tensor {
  const op = "rmsNormRope";
  const eps = opts.eps ?? 1e-6;
  const offset = opts.offset ?? 0;
  const base = opts.base ?? 10000;
  const layout = opts.layout ?? "bthd";
  x.expectDtype(op, "f32");
  weight.expectDtype(op, "f32");
  if (x.rank < 3) {
    throw new RangeError(`${op}: needs x of [..., T, H, D] or [..., H, T, D], got ${x.describe()}`);
  }
  const D = x.shape[x.rank - 1];
  if (weight.rank !== 1 || weight.shape[0] !== D) {
    throw new RangeError(
      `${op}: x ${fmtShape(x.shape)} needs weight of shape [${D}], got ${fmtShape(weight.shape)}`,
    );
  }
  if (D % 2 !== 0) throw new RangeError(`${op}: head size ${D} of ${x.describe()} must be even`);
  if (!(eps >= 0 && Number.isFinite(eps))) {
    throw new RangeError(`${op}: eps ${eps} must be finite and >= 0`);
  }
  if (layout !== "bthd" && layout !== "bhtd") {
    throw new RangeError(`${op}: layout "${layout}" must be "bthd" or "bhtd"`);
  }
  if (!(Number.isInteger(offset) && offset >= 0 && offset < 2 ** 32)) {
    throw new RangeError(`${op}: offset ${offset} must be a non-negative integer`);
  }
  if (!(base > 0 && Number.isFinite(base))) {
    throw new RangeError(`${op}: base ${base} must be finite and > 0`);
  }
  if (D > MAX_D) return rope(rmsNorm(x, weight, eps), { offset, base, layout });

  const [T, tDiv] = layout === "bthd"
    ? [x.shape[x.rank - 3], x.shape[x.rank - 2]]
    : [x.shape[x.rank - 2], 1];
  const rows = D === 0 ? 0 : x.size / D;
  const half = D / 2;
  // lanes per row: a power of two (the kernel's tree sum) holding every pair, at most WG
  const S = Math.min(WG, 2 ** Math.ceil(Math.log2(Math.max(1, half))));
  const P = Math.ceil(half / S) || 1;
  const per = WG / S; // rows a workgroup holds at once
  const steps = Math.min(MAX_STEPS, Math.max(1, Math.ceil(rows / (per * BLOCKS))));
  const chunk = per * steps; // rows per block of the backward
  const blocks = Math.ceil(rows / chunk);
  const p = params([rows, D, T, tDiv, offset, f32(base), f32(eps), S, chunk]);
  const constants = { P };

  const xs = materialize(x);
  const ws = materialize(weight);
  const y = empty(x.shape, "f32", op);
  const rstd = empty([rows], "f32", "rstd");
  const rt = runtime();
  if (rows > 0) {
    rt.dispatch({
      kernel,
      entryPoint: "fwd",
      constants,
      bindings: [xs.binding, ws.binding, y.binding, rstd.binding, p],
      workgroups: grid(Math.ceil(rows / per)),
    });
  }
  return record(y, op, [x, weight], (g) => {
    const dx = empty(x.shape, "f32", "grad");
    if (rows === 0) return [dx, null];
    const gs = materialize(g);
    const dwParts = empty([blocks, D], "f32", "grad");
    rt.dispatch({
      kernel,
      entryPoint: "bwd",
      constants,
      bindings: [
        xs.binding,
        ws.binding,
        gs.binding,
        rstd.binding,
        p,
        dx.binding,
        dwParts.binding,
      ],
      workgroups: grid(blocks),
    });
    return [dx, weightGradFromPartials(dwParts, weight)];
  });
}
