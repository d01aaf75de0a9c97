/**
 * Shape ops. Free (metadata only): reshape of a contiguous tensor, transpose/permute, slice, expand,
 * detach. A strided view is copied to contiguous memory (one dispatch) by the first op whose kernel
 * needs it; `contiguous` does it explicitly. `concat` copies each input into its region of the output.
 *
 * @module
 */
import {
  contiguousStrides,
  copyInto,
  empty,
  materialize,
  normAxis,
  type Tensor,
  zeros,
} from "../tensor/mod.ts";
import { checkShape, fmtShape, resolveReshape, sameShape } from "../tensor/shape.ts";
import { record } from "./tape.ts";
import { sumTo } from "./reduce.ts";

/** Same data, new shape (one `-1` allowed). Free when `x` is contiguous. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const to = resolveReshape(x.shape, shape);
  if (sameShape(to, x.shape) && x.isContiguous) return x;
  const src = materialize(x);
  // src.offset: a contiguous view may start at an aligned offset of its buffer (a packed parameter)
  const out = src.viewAs(to, contiguousStrides(to), src.offset, "reshape");
  return record(out, "reshape", [x], (g) => [reshape(g, x.shape)]);
}

/** Reorders the axes (a view). */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const p = perm.map((a) => normAxis(a, x.rank, "permute"));
  if (p.length !== x.rank || new Set(p).size !== p.length) {
    throw new RangeError(`permute: [${perm}] is not a permutation of the axes of ${x.describe()}`);
  }
  const out = x.viewAs(p.map((a) => x.shape[a]), p.map((a) => x.strides[a]), x.offset, "permute");
  const inv = new Array<number>(p.length);
  p.forEach((a, i) => (inv[a] = i));
  return record(out, "permute", [x], (g) => [permute(g, inv)]);
}

/** Swaps two axes (default the last two), a view. */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  if (x.rank < 2) throw new RangeError(`transpose: ${x.describe()} has fewer than 2 axes`);
  const i = normAxis(a, x.rank, "transpose");
  const j = normAxis(b, x.rank, "transpose");
  const perm = [...Array(x.rank).keys()];
  [perm[i], perm[j]] = [perm[j], perm[i]];
  return permute(x, perm);
}

/** Elements `start..end` (end exclusive) of `axis`, a view. The backward writes into zeros. */
export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  const a = normAxis(axis, x.rank, "slice");
  const n = x.shape[a];
  const e = end ?? n;
  if (!Number.isInteger(start) || !Number.isInteger(e) || start < 0 || e > n || start > e) {
    throw new RangeError(
      `slice: range ${start}..${e} is outside axis ${axis} (size ${n}) of ${x.describe()}`,
    );
  }
  const shape = [...x.shape];
  shape[a] = e - start;
  const out = x.viewAs(shape, x.strides, x.offset + start * x.strides[a], "slice");
  return record(out, "slice", [x], (g) => {
    const dx = zeros(x.shape);
    copyInto(g, dx, dx.strides, start * dx.strides[a]);
    return [dx];
  });
}

/** Broadcasts to `shape` without copying (stride 0 on expanded axes). */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  checkShape(shape, "expand");
  const lead = shape.length - x.rank;
  const ok = lead >= 0 && x.shape.every((d, i) => d === shape[lead + i] || d === 1);
  if (!ok) {
    throw new RangeError(`expand: cannot broadcast ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  }
  if (sameShape(x.shape, shape)) return x;
  const strides = shape.map((d, i) => {
    const j = i - lead;
    return j < 0 || (x.shape[j] === 1 && d !== 1) ? 0 : x.strides[j];
  });
  const out = x.viewAs(shape, strides, x.offset, "expand");
  return record(out, "expand", [x], (g) => [sumTo(g, x.shape)]);
}

/** A contiguous copy of a strided view (`x` itself when already contiguous). */
export function contiguous(x: Tensor): Tensor {
  const out = materialize(x);
  if (out === x) return x;
  return record(out, "contiguous", [x], (g) => [g]);
}

/** The same values with no gradient history (shares storage). */
export function detach(x: Tensor): Tensor {
  return x.viewAs(x.shape, x.strides, x.offset, "detach");
}

/** Joins tensors along `axis` (all other dimensions equal). */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new RangeError("concat: no tensors");
  const a = normAxis(axis, xs[0].rank, "concat");
  for (const t of xs) {
    t.expectDtype("concat", xs[0].dtype);
    const ok = t.rank === xs[0].rank && t.shape.every((d, i) => i === a || d === xs[0].shape[i]);
    if (!ok) {
      throw new RangeError(
        `concat: shapes ${fmtShape(xs[0].shape)} and ${
          fmtShape(t.shape)
        } differ outside axis ${axis}`,
      );
    }
  }
  const shape = [...xs[0].shape];
  shape[a] = xs.reduce((s, t) => s + t.shape[a], 0);
  const out = empty(shape, xs[0].dtype, "concat");
  const starts: number[] = [];
  let at = 0;
  for (const t of xs) {
    starts.push(at);
    copyInto(t, out, out.strides, at * out.strides[a]);
    at += t.shape[a];
  }
  return record(
    out,
    "concat",
    [...xs],
    (g) => xs.map((t, i) => slice(g, a, starts[i], starts[i] + t.shape[a])),
  );
}
