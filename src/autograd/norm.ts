/**
 * RMSNorm, LayerNorm and rotary position embedding (RoPE), forward and backward.
 *
 * @module
 */
import normSource from "../../kernels/ops_norm.wgsl" with { type: "text" };
import rowsSource from "../../kernels/ops_rows.wgsl" with { type: "text" };
import ropeSource from "../../kernels/ops_rope.wgsl" with { type: "text" };
import { grid, type Kernel } from "../gpu/mod.ts";
import { empty, f32, launch1d, materialize, params, runtime, type Tensor } from "../tensor/mod.ts";
import { fmtShape, sameShape } from "../tensor/shape.ts";
import { add } from "./elementwise.ts";
import { needsGrad, record, takePendingGrad } from "./tape.ts";
import { weightGradFromPartials, weightGradPartials } from "./reduce.ts";
import { rowTileK } from "./row_tile.ts";

// Rows per partial column sum of the scalar weight-gradient kernels: enough chunks to fill a
// large GPU, but no more than one grid dimension holds (65,535), so beyond 4.2M rows a chunk grows.
const CHUNK = 64;
const chunkOf = (rows: number) => Math.max(CHUNK, Math.ceil(rows / 65535));

// The fused vec4 backward (C % 4 == 0, C ≤ FUSED_MAX_C: a thread keeps its 16 columns in
// registers) takes blocks of rows: about FUSED_BLOCKS of them (two workgroups per SM of a large
// GPU, a few MB of partials a one-pass fold reads back), at most FUSED_MAX_ROWS rows each
// (llvmpipe's 65,535-iteration limit per invocation; the grid goes 2-D past 65,535 blocks).
const FUSED_MAX_C = 4096;
const FUSED_BLOCKS = 256;
const FUSED_MAX_ROWS = 512;
const fusedRows = (rows: number) =>
  Math.min(FUSED_MAX_ROWS, Math.max(1, Math.ceil(rows / FUSED_BLOCKS)));

const normKernel: Kernel = { name: "ops_norm", code: rowsSource + normSource };
const ropeKernel: Kernel = { name: "ops_rope", code: ropeSource };

function checkNorm(
  op: string,
  x: Tensor,
  w: Tensor,
  b: Tensor | undefined,
  eps: number,
): [number, number] {
  if (!(eps >= 0 && Number.isFinite(eps))) {
    throw new RangeError(`${op}: eps ${eps} must be finite and >= 0`);
  }
  x.expectDtype(op, "f32");
  w.expectDtype(op, "f32");
  b?.expectDtype(op, "f32");
  const C = x.shape[x.rank - 1];
  if (x.rank < 1 || w.rank !== 1 || w.shape[0] !== C || (b && (b.rank !== 1 || b.shape[0] !== C))) {
    throw new RangeError(
      `${op}: x ${fmtShape(x.shape)} needs weight${b ? " and bias" : ""} of shape [${C}], got ${
        fmtShape(w.shape)
      }${b ? ` and ${fmtShape(b.shape)}` : ""}`,
    );
  }
  return [C === 0 ? 0 : x.size / C, C];
}

/**
 * RMSNorm over the last axis: `x / sqrt(mean(x²) + eps) · weight`.
 *
 * @example
 * ```ts
 * const h = rmsNorm(x, g, 1e-6);
 * ```
 */
export function rmsNorm(x: Tensor, weight: Tensor, eps = 1e-6): Tensor {
  const plan = planRms("rmsNorm", x, weight, eps);
  const { rows, C, xs, ws, y, rstd, p } = plan;
  if (rows > 0) {
    runtime().dispatch({
      kernel: normKernel,
      entryPoint: C % 4 === 0 ? "rms_fwd4" : "rms_fwd",
      constants: C % 4 === 0 ? { K: rowTileK(C) } : undefined,
      bindings: [xs.binding, ws.binding, y.binding, rstd.binding, p],
      workgroups: grid(rows),
    });
  }
  return recordRms(plan, x, weight);
}

/** The residual stream and its normalised rows, from {@link addRmsNorm}. */
export interface AddRmsNormResult {
  /** `x + r`. */
  sum: Tensor;
  /** `rmsNorm(x + r, weight, eps)`. */
  normed: Tensor;
}

/**
 * A transformer block's residual step `s = x + r; h = rmsNorm(s, weight)` in one kernel: the sum is
 * written once and normalised from registers, where `add` then `rmsNorm` cost two dispatches and a
 * second read of `s`. Both results take part in autograd as the composed ops would (`s`'s gradient
 * reaches `x` and `r` unchanged). Needs `x` and `r` of one shape with a last axis that is a
 * multiple of 4; other cases run the two ops.
 *
 * @example
 * ```ts
 * const { sum: x1, normed: h } = addRmsNorm(x, attnOut, block.postNorm, 1e-6);
 * ```
 */
export function addRmsNorm(x: Tensor, r: Tensor, weight: Tensor, eps = 1e-6): AddRmsNormResult {
  if (!fusesAddRms(x, r)) {
    const s = add(x, r);
    return { sum: s, normed: rmsNorm(s, weight, eps) };
  }
  const s = empty(x.shape, "f32", "addRmsNorm");
  return { sum: s, normed: addRmsNormInto(x, r, weight, eps, s) };
}

/**
 * Whether {@link addRmsNorm} runs as one kernel for `x` and `r` (else as `add` then `rmsNorm`);
 * throws on operands that cannot be added.
 */
export function fusesAddRms(x: Tensor, r: Tensor): boolean {
  x.expectDtype("addRmsNorm", "f32");
  r.expectDtype("addRmsNorm", "f32");
  if (!sameShape(x.shape, r.shape)) {
    throw new RangeError(
      `addRmsNorm: x ${fmtShape(x.shape)} and r ${fmtShape(r.shape)} must have the same shape`,
    );
  }
  return x.rank > 0 && x.shape[x.rank - 1] % 4 === 0;
}

/**
 * The fused case of {@link addRmsNorm} writing the sum into `s` (f32, `x`'s shape, made by the
 * caller so that a scope adopting the op's temporaries into the normalised rows leaves the
 * residual stream out); records `s` on the tape and returns the normalised rows.
 */
export function addRmsNormInto(
  x: Tensor,
  r: Tensor,
  weight: Tensor,
  eps: number,
  s: Tensor,
): Tensor {
  const C = x.shape[x.rank - 1];
  const xs = materialize(x);
  const rs = materialize(r);
  const plan = planRms("addRmsNorm", s, weight, eps);
  const { rows, ws, y, rstd, p } = plan;
  if (rows > 0) {
    runtime().dispatch({
      kernel: normKernel,
      entryPoint: "add_rms_fwd4",
      constants: { K: rowTileK(C) },
      bindings: [xs.binding, ws.binding, y.binding, rstd.binding, p, rs.binding, s.binding],
      workgroups: grid(rows),
    });
  }
  record(s, "add", [x, r], (g) => [needsGrad(x) ? g : null, needsGrad(r) ? g : null]);
  return recordRms(plan, s, weight);
}

// What an RMSNorm's forward and backward share: the inputs as bound, the outputs, the backward's
// row blocking and the uniform block.
interface RmsPlan {
  rows: number;
  C: number;
  xs: Tensor;
  ws: Tensor;
  y: Tensor;
  rstd: Tensor;
  p: Uint32Array;
  fused: boolean;
  chunks: number;
}

function planRms(op: string, x: Tensor, weight: Tensor, eps: number): RmsPlan {
  const [rows, C] = checkNorm(op, x, weight, undefined, eps);
  const fused = C % 4 === 0 && C <= FUSED_MAX_C;
  const rb = fused ? fusedRows(rows) : chunkOf(rows);
  return {
    rows,
    C,
    xs: materialize(x),
    ws: materialize(weight),
    y: empty(x.shape, "f32", op),
    rstd: empty([rows], "f32", "rstd"),
    p: params([rows, C, f32(eps), rb]),
    fused,
    chunks: Math.max(1, Math.ceil(rows / rb)),
  };
}

// Records `plan.y = rmsNorm(x, weight)` on the tape, with the backward of the plan's kernels.
function recordRms(plan: RmsPlan, x: Tensor, weight: Tensor): Tensor {
  const { rows, C, xs, ws, rstd, p, fused, chunks } = plan;
  const rt = runtime();
  return record(plan.y, "rmsNorm", [x, weight], (g) => {
    // no rows: nothing flows (the kernels' one block would leave its partial row unwritten)
    if (rows === 0) return [empty(x.shape, "f32", "grad"), null];
    const gs = materialize(g);
    const dx = empty(x.shape, "f32", "grad");
    const dwParts = weightGradPartials(weight, chunks, C);
    if (fused) {
      // x's gradient from its other consumers (the residual stream's) is added here, not by the tape
      const addend = needsGrad(x) ? takePendingGrad(x) : null;
      rt.dispatch({
        kernel: normKernel,
        entryPoint: "rms_bwd_dw4",
        constants: { K: rowTileK(C), ADDEND: addend ? 1 : 0 },
        bindings: [
          xs.binding,
          ws.binding,
          gs.binding,
          rstd.binding,
          dx.binding,
          p,
          dwParts.binding,
          (addend ?? gs).binding,
        ],
        workgroups: grid(chunks),
      });
    } else {
      rt.dispatch({
        kernel: normKernel,
        entryPoint: C % 4 === 0 ? "rms_bwd4" : "rms_bwd",
        constants: C % 4 === 0 ? { K: rowTileK(C) } : undefined,
        bindings: [xs.binding, ws.binding, gs.binding, rstd.binding, dx.binding, p],
        workgroups: grid(rows),
      });
      rt.dispatch({
        kernel: normKernel,
        entryPoint: "rms_dw",
        bindings: [xs.binding, gs.binding, rstd.binding, dwParts.binding, p],
        workgroups: [Math.ceil(C / 256), chunks],
      });
    }
    return [dx, weightGradFromPartials(dwParts, weight)];
  });
}

/** LayerNorm over the last axis: `(x − mean) / sqrt(var + eps) · weight + bias` (biased variance). */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  const [rows, C] = checkNorm("layerNorm", x, weight, bias, eps);
  const xs = materialize(x);
  const ws = materialize(weight);
  const bs = materialize(bias);
  const y = empty(x.shape, "f32", "layerNorm");
  const st = empty([2 * rows], "f32", "stats");
  const fused = C % 4 === 0 && C <= FUSED_MAX_C;
  const rb = fused ? fusedRows(rows) : chunkOf(rows);
  const p = params([rows, C, f32(eps), rb]);
  const chunks = Math.max(1, Math.ceil(rows / rb));
  const rt = runtime();
  if (rows > 0) {
    rt.dispatch({
      kernel: normKernel,
      entryPoint: C % 4 === 0 ? "ln_fwd4" : "ln_fwd",
      constants: C % 4 === 0 ? { K: rowTileK(C) } : undefined,
      bindings: [xs.binding, ws.binding, y.binding, st.binding, bs.binding, p],
      workgroups: grid(rows),
    });
  }
  return record(y, "layerNorm", [x, weight, bias], (g) => {
    // no rows: nothing flows (the kernels' one block would leave its partial rows unwritten)
    if (rows === 0) return [empty(x.shape, "f32", "grad"), null, null];
    const gs = materialize(g);
    const dx = empty(x.shape, "f32", "grad");
    const dw = weightGradPartials(weight, chunks, C);
    const db = weightGradPartials(bias, chunks, C);
    if (fused) {
      rt.dispatch({
        kernel: normKernel,
        entryPoint: "ln_bwd_dwb4",
        constants: { K: rowTileK(C) },
        bindings: [
          xs.binding,
          ws.binding,
          gs.binding,
          st.binding,
          dx.binding,
          p,
          dw.binding,
          db.binding,
        ],
        workgroups: grid(chunks),
      });
    } else {
      rt.dispatch({
        kernel: normKernel,
        entryPoint: "ln_bwd",
        bindings: [xs.binding, ws.binding, gs.binding, st.binding, dx.binding, p],
        workgroups: grid(rows),
      });
      rt.dispatch({
        kernel: normKernel,
        entryPoint: "ln_dwb",
        bindings: [xs.binding, gs.binding, st.binding, dw.binding, db.binding, p],
        workgroups: [Math.ceil(C / 256), chunks],
      });
    }
    return [dx, weightGradFromPartials(dw, weight), weightGradFromPartials(db, bias)];
  });
}

/** Options of {@link rope}. */
export interface RopeOptions {
  /** "bthd" (default): x is [..., T, H, D]; "bhtd": x is [..., H, T, D]. */
  layout?: "bthd" | "bhtd";
  /** Position of the first row (KV-cache decoding); default 0. */
  offset?: number;
  /** Frequency base θ; default 10000 (Qwen2 uses 1e6). */
  base?: number;
}

/**
 * Rotary position embedding, "rotate half" pairing (Llama/Qwen): element j of a head pairs with
 * j + D/2 and is rotated by (offset + t) · base^(−2j/D).
 */
export function rope(x: Tensor, opts: RopeOptions = {}): Tensor {
  x.expectDtype("rope", "f32");
  const layout = opts.layout ?? "bthd";
  if (x.rank < 3) {
    throw new RangeError(`rope: needs [..., T, H, D] or [..., H, T, D], got ${x.describe()}`);
  }
  const D = x.shape[x.rank - 1];
  if (D % 2 !== 0) throw new RangeError(`rope: head size ${D} of ${x.describe()} must be even`);
  const [T, tDiv] = layout === "bthd"
    ? [x.shape[x.rank - 3], x.shape[x.rank - 2]]
    : [x.shape[x.rank - 2], 1];
  const offset = opts.offset ?? 0;
  const base = opts.base ?? 10000;
  if (layout !== "bthd" && layout !== "bhtd") {
    throw new RangeError(`rope: layout "${layout}" must be "bthd" or "bhtd"`);
  }
  if (!(Number.isInteger(offset) && offset >= 0 && offset < 2 ** 32)) {
    throw new RangeError(`rope: offset ${offset} must be a non-negative integer`);
  }
  if (!(base > 0 && Number.isFinite(base))) {
    throw new RangeError(`rope: base ${base} must be finite and > 0`);
  }
  const run = (src: Tensor, dir: number, op: string) => {
    const s = materialize(src);
    const y = empty(x.shape, "f32", op);
    const pairs = x.size / 2;
    const p = params([pairs, T, tDiv, D, offset, f32(base), f32(dir), 0]);
    if (pairs > 0) launch1d(runtime(), ropeKernel, "main", [s.binding, y.binding, p], pairs);
    return y;
  };
  const y = run(x, 1, "rope");
  return record(y, "rope", [x], (g) => [run(g, -1, "grad")]);
}
