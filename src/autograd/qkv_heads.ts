/**
 * The joined q/k/v projection's output to attention-ready heads in one op: split into q, k and v,
 * QK-norm (when the model has it) and RoPE on q and k, one dispatch forward and one backward
 * (kernels/ops_qkv_heads.wgsl). Composed, `splitLast` then `rmsNormRope` for q and for k, a layer
 * takes three dispatches forward (every token of a decode step pays them too) and five backward
 * (two norm_rope backwards, two folds of the norm weights' partials, the join); fused it takes one
 * forward and two backward: the kernel, and one column sum that folds both weights' partials
 * straight into their gradients when they sit side by side in a packed gradient arena (a
 * Transformer's qNorm and kNorm do).
 *
 * The tape gives each tensor one node, and q, k, v are three, so their gradients meet as in
 * split.ts: through a private alias of the input whose backward (run after theirs) holds the
 * kernel; each output's backward keeps its gradient aside and the first hands the alias a
 * placeholder (never read).
 *
 * @module
 */
import rowSumSource from "../../kernels/row_sum_lanes.wgsl" with { type: "text" };
import qkvSource from "../../kernels/ops_qkv_heads.wgsl" with { type: "text" };
import { grid, type Kernel } from "../gpu/mod.ts";
import { empty, f32, keep, materialize, params, runtime, type Tensor } from "../tensor/mod.ts";
import { fmtShape } from "../tensor/shape.ts";
import { rope } from "./norm.ts";
import { rmsNormRope } from "./norm_rope.ts";
import { add } from "./elementwise.ts";
import { addColumnSums, sum, weightGradFromPartials } from "./reduce.ts";
import { splitLast } from "./split.ts";
import { gradSink, isGradEnabled, needsGrad, record } from "./tape.ts";
import { deferredPartials, GRAD_SUMS_SPLIT_MAX_BYTES } from "./grad_sums.ts";
import { reshape } from "./views.ts";

const kernel: Kernel = { name: "ops_qkv_heads", code: rowSumSource + qkvSource };

// kernels/ops_qkv_heads.wgsl's WG and PMAX (so the longest head it takes), and the backward's
// blocking, as src/autograd/norm_rope.ts: about BLOCKS blocks of at most MAX_STEPS row groups.
const WG = 256;
const PMAX = 4;
const MAX_D = 2 * WG * PMAX;
const BLOCKS = 256;
const MAX_STEPS = 512;
// The most columns between qNorm's and kNorm's gradients (beyond kNorm's D) that one column sum
// spans (the arena's alignment padding); farther apart, each weight gets its own.
const MAX_GAP = 256;

// Row-major strides of `shape`.
function contiguousStrides(shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  let n = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    out[i] = n;
    n *= shape[i];
  }
  return out;
}

// kernels/ops_qkv_heads.wgsl's flags
const NORM_Q = 1, NORM_K = 2, HAS_DQ = 4, HAS_DK = 8, HAS_DV = 16, SAVE_RSTD = 32, HAS_BIAS = 64;

/** Options of {@link qkvNormRope}. */
export interface QkvNormRopeOptions {
  /** Query heads Hq. */
  heads: number;
  /** Key/value heads Hkv. */
  kvHeads: number;
  /** Head size D (even). */
  headDim: number;
  /** RMSNorm's epsilon; default 1e-6 (as rmsNormRope). */
  eps?: number;
  /** Position of the first token (KV-cache decoding); default 0. */
  offset?: number;
  /** RoPE frequency base θ; default 10000 (Qwen uses 1e6). */
  base?: number;
  /**
   * The projection's bias `[(Hq + 2·Hkv)·D]` (Qwen2's q/k/v biases, joined like the weight), added
   * to `joined` before the norm and the rotation, inside the same kernel; its gradient is the
   * column sums of d(joined) (one reduction, into its `.grad` for a leaf). Default none.
   */
  bias?: Tensor | null;
}

/** The heads {@link qkvNormRope} makes, each contiguous. */
export interface QkvHeads {
  /** `[..., T, Hq, D]`: normalised (with qNorm) and rotated. */
  q: Tensor;
  /** `[..., T, Hkv, D]`: normalised (with kNorm) and rotated. */
  k: Tensor;
  /** `[..., T, Hkv, D]`: copied. */
  v: Tensor;
}

/**
 * Splits `joined` [..., T, (Hq + 2·Hkv)·D], the output of the joined q/k/v projection, into heads
 * and makes them attention-ready in one dispatch: q = `rmsNormRope(q, qNorm)`, k =
 * `rmsNormRope(k, kNorm)` (RoPE alone for a null weight), v as it is; the same values as
 * `splitLast` then `rmsNormRope` (bit for bit in the forward), with rope's "rotate half" pairing
 * and angle (offset + t)·base^(−2j/D). The backward is one dispatch for d(joined) from whichever
 * of dq, dk, dv arrive (a missing one counts as zero) and the norm weights' partials, folded into
 * their gradients by one column sum when both can take it in place (see tape.ts `gradSink`), else
 * one each. With `opts.bias` the rows are `joined + bias` (read in the same kernel, both ways) and
 * the bias's gradient costs one column sum. Several results, like `splitLast`: its temporaries
 * stay with the enclosing scope.
 *
 * @example
 * ```ts
 * const { q, k, v } = qkvNormRope(matmul(h, transpose(wQkv)), qNorm, kNorm, {
 *   heads: 16, kvHeads: 8, headDim: 128, eps: 1e-6, offset, base: 1e6,
 * });
 * ```
 */
export function qkvNormRope(
  joined: Tensor,
  qNorm: Tensor | null,
  kNorm: Tensor | null,
  opts: QkvNormRopeOptions,
): QkvHeads {
  const op = "qkvNormRope";
  const { heads: Hq, kvHeads: Hkv, headDim: D } = opts;
  const eps = opts.eps ?? 1e-6;
  const offset = opts.offset ?? 0;
  const base = opts.base ?? 10000;
  const bias = opts.bias ?? null;
  joined.expectDtype(op, "f32");
  for (const [name, n] of [["heads", Hq], ["kvHeads", Hkv], ["headDim", D]] as const) {
    if (!(Number.isInteger(n) && n > 0)) {
      throw new RangeError(`${op}: ${name} ${n} must be a positive integer`);
    }
  }
  if (D % 2 !== 0) throw new RangeError(`${op}: head size ${D} must be even`);
  const H = Hq + 2 * Hkv;
  if (joined.rank < 2 || joined.shape[joined.rank - 1] !== H * D) {
    throw new RangeError(
      `${op}: needs joined of [..., T, (heads + 2·kvHeads)·headDim] = [..., T, ${H * D}], got ${
        fmtShape(joined.shape)
      }`,
    );
  }
  for (const [name, w] of [["qNorm", qNorm], ["kNorm", kNorm]] as const) {
    if (!w) continue;
    w.expectDtype(op, "f32");
    if (w.rank !== 1 || w.shape[0] !== D) {
      throw new RangeError(`${op}: ${name} must be [${D}], got ${fmtShape(w.shape)}`);
    }
  }
  if (bias) {
    bias.expectDtype(op, "f32");
    if (bias.rank !== 1 || bias.shape[0] !== H * D) {
      throw new RangeError(
        `${op}: bias must be [(heads + 2·kvHeads)·headDim] = [${H * D}], got ${
          fmtShape(bias.shape)
        }`,
      );
    }
  }
  if (!(eps >= 0 && Number.isFinite(eps))) {
    throw new RangeError(`${op}: eps ${eps} must be finite and >= 0`);
  }
  if (!(Number.isInteger(offset) && offset >= 0 && offset < 2 ** 32)) {
    throw new RangeError(`${op}: offset ${offset} must be a non-negative integer`);
  }
  if (!(base > 0 && Number.isFinite(base))) {
    throw new RangeError(`${op}: base ${base} must be finite and > 0`);
  }
  const lead = joined.shape.slice(0, -1);
  if (D > MAX_D) {
    const x = bias ? add(joined, bias) : joined;
    return composed(x, qNorm, kNorm, lead, { Hq, Hkv, D, eps, offset, base });
  }

  const T = lead[lead.length - 1];
  const tokens = lead.reduce((p, d) => p * d, 1);
  const half = D / 2;
  // lanes per row: a power of two holding every pair, at most WG (kernels/ops_norm_rope.wgsl's)
  const S = Math.min(WG, 2 ** Math.ceil(Math.log2(Math.max(1, half))));
  const P = Math.ceil(half / S);
  const per = WG / S;
  const constants = { P };
  const norms = (qNorm ? NORM_Q : 0) | (kNorm ? NORM_K : 0);
  const biased = bias ? HAS_BIAS : 0;
  const parents = [
    joined,
    ...(qNorm ? [qNorm] : []),
    ...(kNorm ? [kNorm] : []),
    ...(bias ? [bias] : []),
  ];
  const recording = isGradEnabled() && parents.some(needsGrad);

  const rt = runtime();
  const xs = materialize(joined);
  const unused = empty([4], "f32", "unused");
  const wqs = qNorm ? materialize(qNorm) : unused;
  const wks = kNorm ? materialize(kNorm) : unused;
  const bs = bias ? materialize(bias) : unused;
  const q = empty([...lead, Hq, D], "f32", op);
  const k = empty([...lead, Hkv, D], "f32", op);
  const v = empty([...lead, Hkv, D], "f32", op);
  // 1/rms of every q and k head row, for the backward
  // (WebGPU takes no buffer read and written by one dispatch: a second stand-in where not needed)
  const rstd = empty([recording && norms ? tokens * (Hq + Hkv) : 4], "f32", "rstd");
  const head = [tokens, Hq, Hkv, D, T, offset, f32(base), f32(eps), S];
  if (tokens > 0) {
    rt.dispatch({
      kernel,
      entryPoint: "fwd",
      constants,
      bindings: [
        xs.binding,
        wqs.binding,
        wks.binding,
        params([...head, norms | biased | (recording && norms ? SAVE_RSTD : 0), 0, 0, 0, 0, 0, 0]),
        q.binding,
        k.binding,
        v.binding,
        rstd.binding,
        bs.binding,
      ],
      workgroups: grid(Math.ceil((tokens * H) / per)),
    });
  }
  const temps = [unused, wqs, wks, bs, rstd].filter((t, i, a) => a.indexOf(t) === i);
  if (xs !== joined) temps.push(xs);
  q.adopt(temps.filter((t) => !parents.includes(t))); // released with q outside a tidy
  if (!recording) return { q, k, v };

  // Each output's gradient, kept aside by its backward until the alias's backward runs the kernel.
  const stash: (Tensor | null)[] = [null, null, null];
  const joint = record(
    joined.viewAs(joined.shape, joined.strides, joined.offset, op),
    op,
    parents,
    () => {
      try {
        return backwardAll(stash.map((g) => g && materialize(g)));
      } finally {
        stash.forEach((g, i) => {
          g?.dispose();
          stash[i] = null;
        });
      }
    },
  );
  q.adopt([joint]);

  // The kernel's blocks for `rows` rows of one section.
  const blocking = (rows: number) => {
    const steps = Math.min(MAX_STEPS, Math.max(1, Math.ceil(rows / (per * BLOCKS))));
    const chunk = per * steps;
    return { chunk, blocks: Math.ceil(rows / chunk) };
  };
  const backwardAll = (gs: (Tensor | null)[]): (Tensor | null)[] => {
    // The bias's gradient is d(joined)'s column sums (d(joined + bias) = d(joined)). When it is
    // small, d(joined) itself is written as the pass's deferred partials of the bias's .grad
    // (grad_sums.ts): summed with the other weights' at the end of the pass, no dispatch of its
    // own; else one column sum here.
    const sink = bias && needsGrad(bias) && tokens > 0 ? gradSink(bias) : null;
    const deferred = sink && !sink.transposed && tokens * H * D * 4 <= GRAD_SUMS_SPLIT_MAX_BYTES
      ? deferredPartials(sink.grad, tokens, H * D)
      : null;
    const dx = deferred
      ? deferred.viewAs(joined.shape, contiguousStrides(joined.shape), deferred.offset, "grad")
      : empty(joined.shape, "f32", "grad");
    deferred?.dispose(); // the arena holds the storage; `dx` is the pass's view of it
    if (tokens === 0) return [dx, ...parents.slice(1).map(() => null)];
    const biasGrad = () =>
      bias && needsGrad(bias) && !deferred
        ? [weightGradFromPartials(dx.viewAs([tokens, H * D], [H * D, 1], dx.offset, "grad"), bias)]
        : bias
        ? [null]
        : [];
    const bq = blocking(tokens * Hq), bk = blocking(tokens * Hkv);
    const nb = Math.max(bq.blocks, bk.blocks);
    // a section without its gradient has a zero one (dx and its weight's): no norm to undo
    const [qw, kw] = [gs[0] && qNorm, gs[1] && kNorm];
    const plan = partialsPlan(qw, kw, nb, D);
    const present = gs.reduce((bits, g, i) => (g ? bits | [HAS_DQ, HAS_DK, HAS_DV][i] : bits), 0);
    const bnorms = (qw ? NORM_Q : 0) | (kw ? NORM_K : 0);
    const nv = Math.ceil((tokens * Hkv * D) / WG);
    const spare = empty([4], "f32", "unused"); // stands in for a missing gradient
    rt.dispatch({
      kernel,
      entryPoint: "bwd",
      constants,
      bindings: [
        xs.binding,
        wqs.binding,
        wks.binding,
        params([
          ...head,
          bnorms | present | biased,
          bq.chunk,
          bk.chunk,
          nb,
          plan.pstride,
          plan.kbase,
          plan.gapEnd,
        ]),
        ...gs.map((g) => (g ?? spare).binding),
        rstd.binding,
        dx.binding,
        (plan.parts ?? empty([4], "f32", "unused")).binding,
        bs.binding,
      ],
      workgroups: grid(2 * nb + nv),
    });
    const [gq, gk] = plan.fold();
    return [dx, ...(qNorm ? [gq] : []), ...(kNorm ? [gk] : []), ...biasGrad()];
  };
  const outs = [q, k, v];
  outs.forEach((out, i) =>
    record(out, op, [joint], (g) => {
      const first = stash.every((s) => s === null);
      stash[i] = keep(g.viewAs(g.shape, g.strides, g.offset, "grad"));
      // the alias needs a gradient of its shape for its node to run: a free zero-stride view
      return [first ? g.viewAs(joined.shape, joined.shape.map(() => 0), g.offset, "grad") : null];
    })
  );
  return { q, k, v };
}

/** Where the backward writes the norm weights' partials, and how it folds them afterwards. */
interface PartialsPlan {
  /** The [nb, …] partials buffer (null without norms). */
  parts: Tensor | null;
  /** Columns between one block's partial row and the next. */
  pstride: number;
  /** First element of the k-norm partials. */
  kbase: number;
  /** The q blocks zero columns D..gapEnd of their row (the gap up to kNorm's columns). */
  gapEnd: number;
  /** The weights' gradients for the tape, qNorm's and kNorm's (null where added in place or absent). */
  fold: () => [Tensor | null, Tensor | null];
}

// Chooses the partials' layout: one [nb, delta + D] matrix folded by one column sum straight into
// a gradient arena (qNorm's and kNorm's gradients delta ≥ D apart in one buffer), or one [nb, 2D]
// matrix folded by one column sum for the tape; else a contiguous [nb, D] matrix per weight, each
// folded by weightGradFromPartials (into its sink, or for the tape).
function partialsPlan(
  qNorm: Tensor | null,
  kNorm: Tensor | null,
  nb: number,
  D: number,
): PartialsPlan {
  const weights = [qNorm, kNorm].filter((w): w is Tensor => w !== null);
  if (weights.length === 0) {
    return { parts: null, pstride: D, kbase: 0, gapEnd: D, fold: () => [null, null] };
  }
  if (qNorm && kNorm) {
    const sq = gradSink(qNorm), sk = gradSink(kNorm);
    if (sq && sk) {
      const delta = sk.grad.offset - sq.grad.offset;
      if (
        !sq.transposed && !sk.transposed && sq.grad.storage === sk.grad.storage &&
        delta >= D && delta - D <= MAX_GAP
      ) {
        const W = delta + D;
        const span = sq.grad.viewAs([W], [1], sq.grad.offset, "grad");
        // summed with the pass's other weight gradients at its end (grad_sums.ts), or here
        const deferred = deferredPartials(span, nb, W);
        const parts = deferred ?? empty([nb, W], "f32", "grad");
        const fold = (): [null, null] => {
          if (!deferred) addColumnSums(parts, span);
          return [null, null];
        };
        return { parts, pstride: W, kbase: delta, gapEnd: delta, fold };
      }
    } else if (!sq && !sk) {
      // kNorm's columns start where a binding can, so both gradients are contiguous views
      const kcol = Math.ceil(D / align()) * align(), W = kcol + D;
      const parts = empty([nb, W], "f32", "grad");
      const fold = (): [Tensor, Tensor] => {
        const both = nb === 1 ? parts : sum(parts, 0);
        const at = (i: number) => both.viewAs([D], [1], both.offset + i, "grad");
        return [at(0), at(kcol)];
      };
      return { parts, pstride: W, kbase: kcol, gapEnd: kcol, fold };
    }
  }
  // one contiguous [nb, D] region per weight, the second at an offset a binding can start at
  const kbase = qNorm && kNorm ? Math.ceil((nb * D) / align()) * align() : 0;
  const parts = empty([kbase + nb * D], "f32", "grad");
  const fold = (): [Tensor | null, Tensor | null] => {
    const region = (at: number) => parts.viewAs([nb, D], [D, 1], at, "grad");
    return [
      qNorm && weightGradFromPartials(region(0), qNorm),
      kNorm && weightGradFromPartials(region(kbase), kNorm),
    ];
  };
  return { parts, pstride: D, kbase, gapEnd: D, fold };
}

// Elements a binding's offset is a multiple of.
function align(): number {
  return runtime().storageOffsetAlignment / 4;
}

// Heads past the kernel's longest row (no real model's): split, then rmsNormRope or rope.
function composed(
  joined: Tensor,
  qNorm: Tensor | null,
  kNorm: Tensor | null,
  lead: number[],
  o: { Hq: number; Hkv: number; D: number; eps: number; offset: number; base: number },
): QkvHeads {
  const [qf, kf, vf] = splitLast(joined, [o.Hq * o.D, o.Hkv * o.D, o.Hkv * o.D]);
  const r = { offset: o.offset, base: o.base };
  const q = reshape(qf, [...lead, o.Hq, o.D]), k = reshape(kf, [...lead, o.Hkv, o.D]);
  return {
    q: qNorm ? rmsNormRope(q, qNorm, { eps: o.eps, ...r }) : rope(q, r),
    k: kNorm ? rmsNormRope(k, kNorm, { eps: o.eps, ...r }) : rope(k, r),
    v: reshape(vf, [...lead, o.Hkv, o.D]),
  };
}
