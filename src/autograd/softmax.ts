/**
 * Softmax, log-softmax, fused cross-entropy with an ignore index, and the gather of one value per
 * row along the last axis (the log-prob of sampled ids).
 *
 * @module
 */
import softmaxSource from "../../kernels/ops_softmax.wgsl" with { type: "text" };
import xentSource from "../../kernels/ops_xent.wgsl" with { type: "text" };
import rowsSource from "../../kernels/ops_rows.wgsl" with { type: "text" };
import { grid, type Kernel } from "../gpu/mod.ts";
import {
  empty,
  launch1d,
  materialize,
  normAxis,
  params,
  runtime,
  sameShape,
  type Tensor,
} from "../tensor/mod.ts";
import { fmtShape } from "../tensor/shape.ts";
import { record } from "./tape.ts";
import { reshape, slice, transpose } from "./views.ts";
import { rowTileK } from "./row_tile.ts";

const softmaxKernel: Kernel = { name: "ops_softmax", code: rowsSource + softmaxSource };
const xentKernel: Kernel = { name: "ops_xent", code: rowsSource + xentSource };

function rowwise(x: Tensor, axis: number, op: string, fn: (x: Tensor) => Tensor): Tensor {
  x.expectDtype(op, "f32");
  if (x.rank === 0) throw new RangeError(`${op}: needs at least one axis, got ${x.describe()}`);
  const a = normAxis(axis, x.rank, op);
  if (a === x.rank - 1) return fn(x);
  return transpose(fn(transpose(x, a, -1)), a, -1);
}

function softmaxLast(x: Tensor, log: boolean): Tensor {
  const name = log ? "logSoftmax" : "softmax";
  const n = x.shape[x.rank - 1];
  const rows = n === 0 ? 0 : x.size / n;
  const xs = materialize(x);
  const y = empty(x.shape, "f32", name);
  if (rows > 0) {
    runtime().dispatch({
      kernel: softmaxKernel,
      entryPoint: (log ? "logsoftmax_fwd" : "softmax_fwd") + (n % 4 === 0 ? "4" : ""),
      constants: n % 4 === 0 ? { K: rowTileK(n) } : undefined,
      bindings: [xs.binding, y.binding, params([rows, n, 0, 0])],
      workgroups: grid(rows),
    });
  }
  return record(y, name, [x], (g) => {
    const dx = empty(x.shape, "f32", "grad");
    const gs = materialize(g);
    runtime().dispatch({
      kernel: softmaxKernel,
      entryPoint: (log ? "logsoftmax_bwd" : "softmax_bwd") + (n % 4 === 0 ? "4" : ""),
      constants: n % 4 === 0 ? { K: rowTileK(n) } : undefined,
      bindings: [y.binding, gs.binding, dx.binding, params([rows, n, 0, 0])],
      workgroups: grid(rows),
    });
    return [dx];
  });
}

/** Softmax along `axis` (default last). A row of all -inf gives NaN, as in float math. */
export function softmax(x: Tensor, axis = -1): Tensor {
  return rowwise(x, axis, "softmax", (t) => softmaxLast(t, false));
}

/**
 * Log-softmax along `axis` (default last). -inf entries give -inf; a row of all -inf gives NaN
 * (its normaliser is 0), as in float math. A row masked with the most negative finite f32 is
 * uniform.
 */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return rowwise(x, axis, "logSoftmax", (t) => softmaxLast(t, true));
}

/** Options of {@link crossEntropy}. */
export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (no loss, no gradient, not counted); default -100. */
  ignoreIndex?: number;
  /** "mean" over non-ignored rows (default; 0 when all are ignored), "sum", or "none" (per row). */
  reduction?: "mean" | "sum" | "none";
}

/**
 * Cross-entropy of `logits` [..., V] against i32 `targets` [...], fused: the probabilities are
 * never stored; the backward recomputes them from the saved log-sum-exp. A -inf logit at the
 * target gives +inf; a row of all -inf gives NaN unless its target is ignored (then 0, with no
 * gradient, as for any ignored row); with every target ignored the mean is 0.
 *
 * @example
 * ```ts
 * const loss = crossEntropy(logits, targets, { ignoreIndex: -1 });
 * ```
 */
export function crossEntropy(
  logits: Tensor,
  targets: Tensor,
  opts: CrossEntropyOptions = {},
): Tensor {
  logits.expectDtype("crossEntropy", "f32");
  targets.expectDtype("crossEntropy", "i32");
  const ignore = opts.ignoreIndex ?? -100;
  const reduction = opts.reduction ?? "mean";
  if (!(Number.isInteger(ignore) && ignore >= -(2 ** 31) && ignore < 2 ** 31)) {
    // the kernel compares i32 targets: 1.5 would silently ignore class 1
    throw new RangeError(`crossEntropy: ignoreIndex ${ignore} must be an i32 integer`);
  }
  if (!["mean", "sum", "none"].includes(reduction)) {
    throw new RangeError(`crossEntropy: reduction "${reduction}" must be "mean", "sum" or "none"`);
  }
  if (logits.rank < 1 || !sameShape(logits.shape.slice(0, -1), targets.shape)) {
    throw new RangeError(
      `crossEntropy: logits ${fmtShape(logits.shape)} need targets of shape ${
        fmtShape(logits.shape.slice(0, -1))
      }, got ${fmtShape(targets.shape)}`,
    );
  }
  const V = logits.shape[logits.rank - 1];
  targets.checkIds("crossEntropy", V, ignore);
  const rows = targets.size;
  const x = materialize(logits);
  const t = materialize(targets);
  const rowLoss = empty(targets.shape, "f32", "crossEntropy");
  const lse = empty([rows, 2], "f32", "lse"); // per row: max and log Σ exp(x - max)
  const rt = runtime();
  const p = params([rows, V, ignore, reduction === "mean" ? 1 : 0]);
  if (rows > 0) {
    rt.dispatch({
      kernel: xentKernel,
      entryPoint: V % 4 === 0 ? "xent_fwd4" : "xent_fwd",
      constants: V % 4 === 0 ? { K: rowTileK(V) } : undefined,
      bindings: [x.binding, t.binding, rowLoss.binding, lse.binding, p],
      workgroups: grid(rows),
    });
  }
  let out = rowLoss;
  let lossAndScale: Tensor | null = null;
  if (reduction !== "none") {
    lossAndScale = empty([2], "f32", "crossEntropy");
    rt.dispatch({
      kernel: xentKernel,
      entryPoint: "xent_finalize",
      bindings: [rowLoss.binding, t.binding, lossAndScale.binding, p],
      workgroups: [1],
    });
    out = reshape(slice(lossAndScale, 0, 0, 1), []);
  }
  return record(out, "crossEntropy", [logits], (g) => {
    const dx = empty(logits.shape, "f32", "grad");
    const gs = materialize(g);
    const scale = lossAndScale ? out : gs; // out shares lossAndScale's buffer
    launch1d(
      rt,
      xentKernel,
      V % 4 === 0 ? "xent_bwd4" : "xent_bwd",
      [x.binding, t.binding, lse.binding, gs.binding, scale.binding, dx.binding, p],
      V % 4 === 0 ? rows * V / 4 : rows * V,
      { PER_ROW: reduction === "none" ? 1 : 0 },
    );
    return [dx];
  });
}

/**
 * `out[...] = x[..., ids[...]]`: one value per row along the last axis (e.g. the log-prob of the
 * sampled token). An id outside [0, V) gives NaN. The backward writes each row's gradient at its id.
 */
export function gatherLast(x: Tensor, ids: Tensor): Tensor {
  x.expectDtype("gatherLast", "f32");
  ids.expectDtype("gatherLast", "i32");
  if (x.rank < 1 || !sameShape(x.shape.slice(0, -1), ids.shape)) {
    throw new RangeError(
      `gatherLast: x ${fmtShape(x.shape)} needs ids of shape ${
        fmtShape(x.shape.slice(0, -1))
      }, got ${fmtShape(ids.shape)}`,
    );
  }
  const V = x.shape[x.rank - 1];
  ids.checkIds("gatherLast", V);
  const rows = ids.size;
  const xs = materialize(x);
  const is = materialize(ids);
  const out = empty(ids.shape, "f32", "gatherLast");
  const p = params([rows, V, 0, 0]);
  if (rows > 0) {
    launch1d(runtime(), xentKernel, "gather_fwd", [xs.binding, is.binding, out.binding, p], rows);
  }
  return record(out, "gatherLast", [x], (g) => {
    const dx = empty(x.shape, "f32", "grad");
    const gs = materialize(g);
    if (dx.size > 0) {
      launch1d(
        runtime(),
        xentKernel,
        "gather_bwd",
        [gs.binding, is.binding, dx.binding, p],
        dx.size,
      );
    }
    return [dx];
  });
}
