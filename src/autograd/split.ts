/**
 * Splitting the last axis into two or three contiguous pieces: one dispatch forward, and one
 * backward that joins the pieces' gradients into the input's. A transformer block computes q, k
 * and v with one matmul against the joined [q; k; v] weight and splits its output here: the
 * pieces are contiguous for the ops that read them (QK-norm, RoPE, attention), and the backward
 * hands the matmul one gradient, so the input's and the weight's gradients are one matmul each
 * (three each, and two adds, with separate products).
 *
 * The tape gives each tensor one node, and the pieces are three tensors, so their gradients meet
 * through a private alias of the input: the first piece whose backward runs hands the alias a
 * placeholder gradient (never read), each piece keeps its own gradient aside, and the alias's
 * backward, which the topological order runs after every piece that gets a gradient, joins them
 * in one dispatch (zero columns for a piece that got none). No other op reads the alias, so no
 * gradient is ever summed with the placeholder.
 *
 * @module
 */
import splitSource from "../../kernels/ops_split.wgsl" with { type: "text" };
import type { Kernel } from "../gpu/mod.ts";
import { empty, keep, launch1d, materialize, params, runtime, type Tensor } from "../tensor/mod.ts";
import { fmtShape } from "../tensor/shape.ts";
import { record } from "./tape.ts";

// The source is written over ELEM: scalar for any widths, vec4 when all are multiples of 4.
const kernels: Record<"f32" | "vec4f", Kernel> = {
  f32: { name: "ops_split", code: splitSource.replaceAll("ELEM", "f32") },
  vec4f: { name: "ops_split_vec4", code: splitSource.replaceAll("ELEM", "vec4f") },
};

/**
 * Splits the last axis of `x` [..., Σw] into contiguous pieces [..., w_p] of `widths` (two or
 * three, each > 0), copied in one dispatch. Gradients flow back from any subset of the pieces and
 * are joined in one dispatch.
 *
 * @example
 * ```ts
 * const [q, k, v] = splitLast(matmul(h, transpose(wQkv)), [Hq * D, Hkv * D, Hkv * D]);
 * ```
 */
export function splitLast(x: Tensor, widths: readonly number[]): Tensor[] {
  x.expectDtype("splitLast", "f32");
  if (x.rank < 1) throw new RangeError(`splitLast: ${x.describe()} has no axis to split`);
  const cols = x.shape[x.rank - 1];
  if (widths.length < 2 || widths.length > 3) {
    throw new RangeError(`splitLast: takes two or three widths, got [${widths}]`);
  }
  if (!widths.every((w) => Number.isInteger(w) && w > 0)) {
    throw new RangeError(`splitLast: widths [${widths}] must be positive integers`);
  }
  const total = widths.reduce((s, w) => s + w, 0);
  if (total !== cols) {
    throw new RangeError(
      `splitLast: widths [${widths}] sum to ${total}, but the last axis of ${
        fmtShape(x.shape)
      } is ${cols}`,
    );
  }
  const lead = x.shape.slice(0, -1);
  const rows = cols === 0 ? 0 : x.size / cols;
  const vec = widths.every((w) => w % 4 === 0);
  const unit = vec ? 4 : 1;
  const kernel = kernels[vec ? "vec4f" : "f32"];
  const n = widths.length;
  // [count, cols, w0, w1, w2, present] in ELEM units
  const layout = (present: number) =>
    params([
      (rows * cols) / unit,
      cols / unit,
      ...widths.map((w) => w / unit),
      ...(n === 2 ? [0] : []),
      present,
    ]);
  const count = (rows * cols) / unit;

  const xs = materialize(x);
  const pieces = widths.map((w) => empty([...lead, w], "f32", "split"));
  if (count > 0) {
    launch1d(
      runtime(),
      kernel,
      `split${n}`,
      [xs.binding, layout(0), ...pieces.map((t) => t.binding)],
      count,
    );
  }
  if (xs !== x) xs.dispose(); // the pieces are copies: nothing reads x again

  const joint = record(
    x.viewAs(x.shape, x.strides, x.offset, "split"),
    "split",
    [x],
    () => [join()],
  );
  if (!joint.node) {
    joint.dispose();
    return pieces;
  }
  // Each piece's gradient, kept aside by its backward until the alias's backward joins them.
  const stash: (Tensor | null)[] = widths.map(() => null);
  const join = (): Tensor => {
    const dx = empty(x.shape, "f32", "grad");
    const gs = stash.map((g) => g && materialize(g));
    const present = gs.reduce((bits, g, p) => (g ? bits | (1 << p) : bits), 0);
    const dummy = gs.every((g) => g) ? null : empty([4], "f32", "unused");
    if (count > 0) {
      launch1d(
        runtime(),
        kernel,
        `join${n}`,
        [dx.binding, layout(present), ...gs.map((g) => (g ?? dummy!).binding)],
        count,
      );
    }
    stash.forEach((g, p) => {
      g?.dispose();
      stash[p] = null;
    });
    return dx;
  };
  pieces.forEach((piece, p) =>
    record(piece, "split", [joint], (g) => {
      const first = stash.every((s) => s === null);
      stash[p] = keep(g.viewAs(g.shape, g.strides, g.offset, "grad"));
      // The alias needs a gradient of its shape for its node to run; a zero-stride view of this
      // one costs nothing and is never read (the join reads the stash).
      return [first ? g.viewAs(x.shape, x.shape.map(() => 0), g.offset, "grad") : null];
    })
  );
  pieces[0].adopt([joint]); // released with the first piece when used outside a tidy
  return pieces;
}
