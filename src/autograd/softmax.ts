/**
 * Softmax, log-softmax, fused cross-entropy with an ignore index, and the gather of one value per
 * row along the last axis (the log-prob of sampled ids).
 *
 * Rows are independent, so `[rows, V]` tensors larger than one storage binding (the logits of a
 * 151,936-token vocabulary: ~220 rows per 128 MiB) are bound in blocks of whole rows, one dispatch
 * per block (src/tensor/blocks.ts); per-row inputs and outputs (targets, losses, saved
 * statistics) stay whole and the kernels index them from the block's first row. Tensors that fit
 * take the one-dispatch path unchanged.
 *
 * @module
 */
import softmaxSource from "../../kernels/ops_softmax.wgsl" with { type: "text" };
import xentSource from "../../kernels/ops_xent.wgsl" with { type: "text" };
import rowsSource from "../../kernels/ops_rows.wgsl" with { type: "text" };
import { type BufferSlice, grid, type Kernel } from "../gpu/mod.ts";
import {
  empty,
  fitsOneBinding,
  launch1d,
  materialize,
  normAxis,
  params,
  type RowBlock,
  rowBlocks,
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

/**
 * The row blocks of contiguous `[rows, n]` tensors read or written side by side (same shape, so
 * the same blocks), one list per tensor; null when every one fits one binding (the usual
 * one-dispatch path). `op` names the caller in the RangeError of a row too long for a binding.
 */
function rowBlocksOf(op: string, n: number, ...ts: Tensor[]): RowBlock[][] | null {
  if (ts.every(fitsOneBinding)) return null;
  return ts.map((t) => rowBlocks(t, n, `${op}: ${t.describe()}`));
}

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
  // Rows are independent and the kernels index nothing per row but the rows themselves: a tensor
  // over one binding is the same dispatch over each block of rows.
  const run = (entry: string, ts: Tensor[]) => {
    const blocks = rowBlocksOf(name, n, ...ts);
    const parts = blocks
      ? blocks[0].map((b, i) => ({ ...b, bindings: blocks.map((bs) => bs[i].binding) }))
      : [{ row0: 0, rows, bindings: ts.map((t) => t.binding) }];
    for (const part of parts) {
      runtime().dispatch({
        kernel: softmaxKernel,
        entryPoint: entry + (n % 4 === 0 ? "4" : ""),
        constants: n % 4 === 0 ? { K: rowTileK(n) } : undefined,
        bindings: [...part.bindings, params([part.rows, n, 0, 0])],
        workgroups: grid(part.rows),
      });
    }
  };
  if (rows > 0) run(log ? "logsoftmax_fwd" : "softmax_fwd", [xs, y]);
  return record(y, name, [x], (g) => {
    const dx = empty(x.shape, "f32", "grad");
    const gs = materialize(g);
    run(log ? "logsoftmax_bwd" : "softmax_bwd", [y, gs, dx]);
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
  const mean = reduction === "mean" ? 1 : 0;
  // The parameters of a dispatch over `n` rows from `row0`: one dispatch of all rows, or one per
  // block of logits over one storage binding (the gradient wrt the logits in the same blocks).
  const head = (n: number, row0: number) => params([n, V, ignore, mean, row0]);
  const p = head(rows, 0);
  if (rows > 0) {
    const parts = rowBlocksOf("crossEntropy", V, x)?.[0] ?? [{ row0: 0, rows, binding: x.binding }];
    for (const b of parts) {
      rt.dispatch({
        kernel: xentKernel,
        entryPoint: V % 4 === 0 ? "xent_fwd4" : "xent_fwd",
        constants: V % 4 === 0 ? { K: rowTileK(V) } : undefined,
        bindings: [
          b.binding,
          t.binding,
          rowLoss.binding,
          lse.binding,
          head(b.rows, b.row0),
        ],
        workgroups: grid(b.rows),
      });
    }
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
    const blocks = rows > 0 ? rowBlocksOf("crossEntropy", V, x, dx) : null;
    const parts = blocks
      ? blocks[0].map((b, i) => ({ ...b, dx: blocks[1][i].binding }))
      : [{ row0: 0, rows, binding: x.binding, dx: dx.binding }];
    for (const b of parts) {
      launch1d(
        rt,
        xentKernel,
        V % 4 === 0 ? "xent_bwd4" : "xent_bwd",
        [
          b.binding,
          t.binding,
          lse.binding,
          gs.binding,
          scale.binding,
          b.dx,
          head(b.rows, b.row0),
        ],
        V % 4 === 0 ? b.rows * V / 4 : b.rows * V,
        { PER_ROW: reduction === "none" ? 1 : 0 },
      );
    }
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
  const p = params([rows, V, 0, 0, 0]);
  const rt = runtime();
  // one dispatch, or one per block of rows of an x (dx) over one storage binding, as crossEntropy
  const each = (ts: Tensor[], fn: (b: Bound, p: Uint32Array) => void) => {
    const blocks = rowBlocksOf("gatherLast", V, ...ts);
    if (!blocks) return fn({ row0: 0, rows, bindings: ts.map((t) => t.binding) }, p);
    blocks[0].forEach((b, i) =>
      fn({ ...b, bindings: blocks.map((bs) => bs[i].binding) }, params([b.rows, V, 0, 0, b.row0]))
    );
  };
  if (rows > 0) {
    each([xs], (b, q) => {
      launch1d(rt, xentKernel, "gather_fwd", [b.bindings[0], is.binding, out.binding, q], b.rows);
    });
  }
  return record(out, "gatherLast", [x], (g) => {
    const dx = empty(x.shape, "f32", "grad");
    const gs = materialize(g);
    if (dx.size > 0) {
      each([dx], (b, q) => {
        launch1d(
          rt,
          xentKernel,
          "gather_bwd",
          [gs.binding, is.binding, b.bindings[0], q],
          b.rows * V,
        );
      });
    }
    return [dx];
  });
}

// Rows [row0, row0 + rows) of tensors read side by side, and their bindings.
interface Bound {
  row0: number;
  rows: number;
  bindings: (GPUBuffer | BufferSlice)[];
}
