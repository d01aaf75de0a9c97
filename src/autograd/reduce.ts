/**
 * Reductions over axes (sum, mean, max) and `sumTo`, the reduction every broadcasting backward uses.
 *
 * @module
 */
import reduceSource from "../../kernels/ops_reduce.wgsl" with { type: "text" };
import { type Binding, grid, type Kernel } from "../gpu/mod.ts";
import { empty, f32, normAxes, params, runtime, sameShape, type Tensor } from "../tensor/mod.ts";
import { fmtShape } from "../tensor/shape.ts";
import { gradSink, record } from "./tape.ts";
import { div, eq, mul } from "./elementwise.ts";
import { expand, reshape } from "./views.ts";
import { deferredPartials, isDeferredPartials } from "./grad_sums.ts";

const reduceKernel: Kernel = { name: "ops_reduce", code: reduceSource };

function reduceRaw(
  x: Tensor,
  axes: number[],
  keepDims: boolean,
  op: 0 | 1,
  scale: number,
  name: string,
): Tensor {
  x.expectDtype(name, "f32");
  const red = new Set(axes);
  const kept = x.shape.map((_, i) => i).filter((i) => !red.has(i));
  const outShape = keepDims
    ? x.shape.map((d, i) => (red.has(i) ? 1 : d))
    : kept.map((i) => x.shape[i]);
  const out = empty(outShape, "f32", name);
  const redCount = axes.reduce((p, a) => p * x.shape[a], 1);
  if (op === 1 && redCount === 0) {
    throw new RangeError(`${name}: cannot take the max over an empty axis of ${x.describe()}`);
  }
  if (out.size === 0) return out;
  if (
    op === 0 && x.isContiguous && redCount > 1 && out.size > 1 && axes.every((a, i) => a === i) &&
    Math.ceil(out.size / COLS_PER_GROUP) <= MAX_GROUPS
  ) {
    columnSums(x.binding, redCount, out.size, scale, out); // leading axes: coalesced column sums
    return out;
  }
  const kShape = kept.map((i) => x.shape[i]), kStrides = kept.map((i) => x.strides[i]);
  const row = trailingRow(x, axes);
  // A contiguous run of trailing axes reduces as rows of redCount elements (vec4 when aligned).
  const rShape = row ? [redCount] : axes.map((i) => x.shape[i]);
  const rStrides = row ? [1] : axes.map((i) => x.strides[i]);
  const entry = !row ? "main" : redCount % 4 === 0 && x.offset % 4 === 0 &&
      kStrides.every((s, i) => kShape[i] === 1 || s % 4 === 0)
    ? "rows4"
    : "rows";
  if (redCount <= PART) {
    reduceDispatch(x, entry, kShape, kStrides, rShape, rStrides, redCount, op, scale, out);
    return out;
  }
  // Long reductions in two passes: [out, parts] partials, then each row of partials.
  const parts = Math.ceil(redCount / PART);
  const partial = empty([out.size, parts], "f32", "partialReduce");
  reduceDispatch(x, entry, kShape, kStrides, rShape, rStrides, PART, op, 1, partial);
  const pEntry = parts % 4 === 0 ? "rows4" : "rows";
  reduceDispatch(partial, pEntry, [out.size], [parts], [parts], [1], parts, op, scale, out);
  partial.dispose(); // recorded work keeps running in order; the pool reuses it only afterwards
  return out;
}

// True when `axes` (sorted) are the trailing axes of x and row-major among themselves, so the
// reduced elements of each output are one contiguous run (size-1 axes have any stride).
function trailingRow(x: Tensor, axes: number[]): boolean {
  if (axes.length === 0 || axes[axes.length - 1] !== x.rank - 1) return false;
  if (axes.some((a, i) => a !== x.rank - axes.length + i)) return false;
  let acc = 1;
  for (let i = x.rank - 1; i >= x.rank - axes.length; i--) {
    if (x.shape[i] !== 1 && x.strides[i] !== acc) return false;
    acc *= x.shape[i];
  }
  return true;
}

// Elements of the reduced space one workgroup covers (at most 64 per thread), and the most
// workgroups one grid dimension takes.
const PART = 256 * 64;
const MAX_GROUPS = 65535;

// One dispatch of ops_reduce.wgsl `entry` (main, rows or rows4) into `dst`
// [out, ceil(redCount / partLen)].
function reduceDispatch(
  x: Tensor,
  entry: "main" | "rows" | "rows4",
  kShape: number[],
  kStrides: number[],
  rShape: number[],
  rStrides: number[],
  partLen: number,
  op: 0 | 1,
  scale: number,
  dst: Tensor,
): void {
  const redCount = rShape.reduce((p, d) => p * d, 1);
  const outCount = kShape.reduce((p, d) => p * d, 1);
  const parts = Math.max(1, Math.ceil(redCount / Math.max(1, partLen)));
  const p = params(
    [
      outCount,
      kShape.length,
      rShape.length,
      redCount,
      x.offset,
      f32(scale),
      Math.max(1, partLen),
      f32(op === 1 ? -Infinity : 0),
    ],
    kShape,
    kStrides,
    rShape,
    rStrides,
  );
  runtime().dispatch({
    kernel: reduceKernel,
    entryPoint: entry,
    constants: { OP: op },
    bindings: [x.storageBuffer, dst.binding, p],
    workgroups: grid(outCount * parts),
  });
}

// Columns one colsum workgroup covers (16 vec4 or 64 scalars), the fewest rows per chunk (a
// thread then sums 16 rows in four trips of four loads), and about how many workgroups a pass
// aims for (enough to keep a large GPU's memory busy; fewer chunks mean smaller partials).
const COLS_PER_GROUP = 64;
const MIN_CHUNK = 256;
const TARGET_GROUPS = 1024;

// Sums the rows of a contiguous [rows, cols] buffer into `out` [cols] (or adds them to it, with
// `accumulate`): chunks of rows summed per column strip, then the [chunks, cols] partials folded
// again the same way until one chunk is left (coalesced reads; fixed order, so deterministic).
// Usually two dispatches.
function columnSums(
  src: Binding,
  rows: number,
  cols: number,
  scale: number,
  out: Tensor,
  accumulate = false,
): void {
  const rt = runtime();
  const gx = Math.ceil(cols / COLS_PER_GROUP);
  let buffer = src;
  let n = rows;
  const temps: Tensor[] = [];
  while (n > 0) {
    const perGroup = Math.max(1, Math.floor(TARGET_GROUPS / gx));
    const chunk = Math.max(MIN_CHUNK, Math.ceil(n / perGroup), Math.ceil(n / MAX_GROUPS));
    const chunks = Math.ceil(n / chunk);
    const dst = chunks === 1 ? out : empty([chunks, cols], "f32", "partialSums");
    if (dst !== out) temps.push(dst);
    rt.dispatch({
      kernel: reduceKernel,
      entryPoint: cols % 4 === 0 ? "colsum4" : "colsum",
      constants: accumulate && chunks === 1 ? { ACCUMULATE: 1 } : undefined,
      bindings: [buffer, dst.binding, params([n, cols, chunk, f32(chunks === 1 ? scale : 1)])],
      workgroups: [gx, chunks],
    });
    if (chunks === 1) break;
    buffer = dst.binding;
    n = chunks;
  }
  for (const t of temps) t.dispose();
}

/**
 * Adds the column sums of a contiguous `[rows, cols]` tensor to the contiguous `[cols]` tensor
 * `target` in place (deterministic fixed-order sums): how a weight's gradient partials reach its
 * `.grad` without a temporary and an accumulate dispatch (see tape.ts `gradSink`).
 */
export function addColumnSums(src: Tensor, target: Tensor): void {
  const [rows, cols] = src.shape;
  if (src.rank !== 2 || !src.isContiguous || !target.isContiguous || target.size !== cols) {
    throw new RangeError(
      `addColumnSums: ${src.describe()} into ${target.describe()} needs contiguous [rows, cols] ` +
        "and [cols]",
    );
  }
  if (rows > 0 && cols > 0) columnSums(src.binding, rows, cols, 1, target, true);
}

/**
 * Where a backward closure writes the per-block partial rows [blocks, C] of `weight`'s gradient
 * for {@link weightGradFromPartials}: in the pass's deferred-sums arena when the weight is a leaf
 * whose `.grad` can take them (one dispatch then sums every weight's partials at the end of the
 * pass; see grad_sums.ts), else a new tensor.
 */
export function weightGradPartials(weight: Tensor, blocks: number, C: number): Tensor {
  const sink = gradSink(weight);
  const deferred = sink && !sink.transposed ? deferredPartials(sink.grad, blocks, C) : null;
  return deferred ?? empty([blocks, C], "f32", "grad");
}

/**
 * A weight's gradient from per-block partial rows `parts` [blocks, C] (the fused norm backward
 * kernels write one row per block of input rows): added straight into the weight's `.grad` when it
 * is a leaf to sink into (then null, so the tape adds nothing), else summed into a [C] gradient for
 * the tape.
 */
export function weightGradFromPartials(parts: Tensor, weight: Tensor): Tensor | null {
  if (isDeferredPartials(parts)) return null; // summed into .grad at the end of the pass
  const sink = gradSink(weight);
  if (sink && !sink.transposed) {
    addColumnSums(parts, sink.grad);
    return null;
  }
  const [blocks, C] = parts.shape;
  return blocks === 1 ? reshape(parts, [C]) : sum(parts, 0);
}

function keptShape(shape: readonly number[], axes: number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/** Sum over `axes` (default all). */
export function sum(x: Tensor, axes?: number | number[], keepDims = false): Tensor {
  const ax = normAxes(axes, x.rank, "sum");
  const out = reduceRaw(x, ax, keepDims, 0, 1, "sum");
  return record(out, "sum", [x], (g) => [expand(reshape(g, keptShape(x.shape, ax)), x.shape)]);
}

/** Mean over `axes` (default all). */
export function mean(x: Tensor, axes?: number | number[], keepDims = false): Tensor {
  const ax = normAxes(axes, x.rank, "mean");
  const count = ax.reduce((p, a) => p * x.shape[a], 1);
  if (count === 0) throw new RangeError(`mean: empty reduction over ${x.describe()}`);
  const out = reduceRaw(x, ax, keepDims, 0, 1 / count, "mean");
  return record(
    out,
    "mean",
    [x],
    (g) => [expand(reshape(mul(g, 1 / count), keptShape(x.shape, ax)), x.shape)],
  );
}

/** Max over `axes` (default all); the gradient is shared equally among tied maxima. */
export function max(x: Tensor, axes?: number | number[], keepDims = false): Tensor {
  const ax = normAxes(axes, x.rank, "max");
  const out = reduceRaw(x, ax, keepDims, 1, 1, "max");
  return record(out, "max", [x], (g) => {
    const ks = keptShape(x.shape, ax);
    const mask = eq(x, reshape(out, ks));
    const count = reduceRaw(mask, ax, true, 0, 1, "sum");
    return [mul(mask, div(reshape(g, ks), count))];
  });
}

/** Sums `g` over the axes that broadcasting expanded, giving a tensor of `shape`. */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  if (lead < 0) {
    throw new RangeError(`sumTo: ${fmtShape(g.shape)} has fewer axes than ${fmtShape(shape)}`);
  }
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  return reshape(reduceRaw(g, axes, false, 0, 1, "sumTo"), shape);
}
