/**
 * The rollout model's distillation loss (SPEC §6, the paper's Eq. 8): the KL between the policy's
 * (teacher, detached) and the rollout model's (student) softmax over the whole vocabulary at every
 * sampled position, fused (kernels/rl_distill.wgsl): the forward reads both logit rows once (twice
 * past 4096 entries) and keeps per row only the two log-sum-exps; the backward writes the [N, V]
 * gradient in one pass from them. No [N, V] softmax is ever stored.
 *
 * Logits larger than one storage binding (Qwen's 151,936-entry vocabulary: ~220 rows per 128 MiB)
 * are dispatched in blocks of rows as src/autograd/softmax.ts does; per-row outputs stay whole.
 *
 * @module
 */
import rowsSource from "../../kernels/ops_rows.wgsl" with { type: "text" };
import distillSource from "../../kernels/rl_distill.wgsl" with { type: "text" };
import type { Binding, Kernel } from "../gpu/mod.ts";
import { grid } from "../gpu/mod.ts";
import {
  empty,
  f32,
  fitsOneBinding,
  fmtShape,
  launch1d,
  materialize,
  params,
  rowBlocks,
  runtime,
  sameShape,
  type Tensor,
} from "../tensor/mod.ts";
import { record } from "../autograd/tape.ts";
import { reshape, slice } from "../autograd/views.ts";
import { rowTileK } from "../autograd/row_tile.ts";
import { checkDistillOptions, type KLDirection } from "./distill_reference.ts";

export type { KLDirection } from "./distill_reference.ts";

// The kernel file holds the shared body, then a `//#section load4` and a `//#section load1`: the
// two ways of loading a quad of a row (one vec4, or four guarded scalars when V % 4 != 0).
function sections(src: string): Record<string, string> {
  const parts = src.split(/^\/\/#section (\w+)$/m);
  const out: Record<string, string> = { body: parts[0] };
  for (let i = 1; i + 1 < parts.length; i += 2) out[parts[i]] = parts[i + 1];
  if (!out.load4 || !out.load1) throw new Error("kernels/rl_distill.wgsl: missing a load section");
  return out;
}
const parts = sections(distillSource);
const kernel4: Kernel = { name: "rl_distill4", code: rowsSource + parts.body + parts.load4 };
const kernel1: Kernel = { name: "rl_distill1", code: rowsSource + parts.body + parts.load1 };

const F_REVERSE = 1, F_MASK = 2, F_MASK_F32 = 4;

/** Options of {@link distillKL} and {@link klRows}. */
export interface DistillOptions {
  /**
   * "forward" (default): KL(SG(p_teacher) ‖ p_student), the paper's Eq. 8 (mass-covering);
   * "reverse": KL(p_student ‖ SG(p_teacher)) (mode-seeking).
   */
  direction?: KLDirection;
  /**
   * Both logits are divided by T (> 0, default 1) before the softmax; the gradient wrt the raw
   * student logits carries the 1/T. The loss is not multiplied by T² (Hinton's scaling): do that
   * in the caller's coefficient if wanted.
   */
  temperature?: number;
  /** [N] (or the logits' leading shape), f32, u32 or i32: 0 drops a row from the mean and gradient. */
  mask?: Tensor;
}

/** Per-row outputs of {@link klRows}. */
export interface KLRows {
  /** [N] the chosen direction's KL per row; 0 for dropped rows, +inf / NaN as documented. */
  rowKl: Tensor;
  /**
   * [N, 8] per row: max and log Σ exp(x − max) of the tempered student, the same of the teacher,
   * KL(t ‖ s), KL(s ‖ t), H(student), H(teacher); zeros for dropped rows, NaN (last 4) for invalid.
   */
  rowStats: Tensor;
}

/** What {@link distillKL} returns. */
export interface DistillResult {
  /** Scalar: mean KL over kept rows (0 when none); differentiable wrt the student logits. */
  loss: Tensor;
  /** [N] per-row KL (no gradient), for logging. */
  rowKl: Tensor;
  /** [8] f32 (see {@link decodeDistillStats}); `loss` is a view of element 0. */
  stats: Tensor;
}

/** The host values of a {@link DistillResult.stats} readback. */
export interface DistillStats {
  /** Mean KL over kept rows (0 when none; +inf when a row's is; NaN when a row is invalid). */
  loss: number;
  /** Rows in the mean. */
  keptRows: number;
  /** Kept rows with an infinite KL (mass where the other model has a -inf logit). */
  infRows: number;
  /** Kept rows with a NaN or +inf logit, or all -inf in either model. */
  nanRows: number;
}

/**
 * Reads the stats tensor of {@link distillKL}.
 *
 * @example
 * ```ts
 * const s = decodeDistillStats(await read(res.stats)); // { loss, keptRows, infRows, nanRows }
 * ```
 */
export function decodeDistillStats(host: ArrayLike<number>): DistillStats {
  if (host.length !== 8) {
    throw new RangeError(
      `decodeDistillStats: ${host.length} values, a distillKL stats tensor has 8`,
    );
  }
  return { loss: host[0], keptRows: host[2], infRows: host[3], nanRows: host[4] };
}

interface Prepared {
  /** Contiguous copies made of strided inputs: released with the op's output. */
  copies: Tensor[];
  s: Tensor;
  t: Tensor;
  V: number;
  rows: number;
  mask: Tensor | null;
  flags: number;
  invT: number;
  kernel: Kernel;
}

function prepare(op: string, student: Tensor, teacher: Tensor, o: DistillOptions): Prepared {
  student.expectDtype(op, "f32");
  teacher.expectDtype(op, "f32");
  const invT = checkDistillOptions(op, o);
  if (student.rank < 1 || !sameShape(student.shape, teacher.shape)) {
    throw new RangeError(
      `${op}: student ${fmtShape(student.shape)} and teacher ${
        fmtShape(teacher.shape)
      } logits need the same shape [..., V]`,
    );
  }
  const V = student.shape[student.rank - 1];
  if (V < 1) throw new RangeError(`${op}: the vocabulary axis of ${student.describe()} is empty`);
  const rows = student.size / V;
  let flags = o.direction === "reverse" ? F_REVERSE : 0;
  let mask: Tensor | null = null;
  if (o.mask) {
    o.mask.expectDtype(op, "f32", "u32", "i32");
    if (o.mask.size !== rows) {
      throw new RangeError(
        `${op}: mask ${o.mask.describe()} needs ${rows} values (one per row of ${student.describe()})`,
      );
    }
    mask = materialize(o.mask);
    flags |= F_MASK | (o.mask.dtype === "f32" ? F_MASK_F32 : 0);
  }
  const kernel = V % 4 === 0 ? kernel4 : kernel1;
  const s = materialize(student), t = materialize(teacher);
  const copies = [s !== student && s, t !== teacher && t, mask !== o.mask && mask].filter(
    (x): x is Tensor => !!x,
  );
  return { copies, s, t, V, rows, mask, flags, invT, kernel };
}

// The row blocks of s, t (and dx): one whole block each when all fit one binding.
function blocksOf(pr: Prepared, extra: Tensor[] = []) {
  const ts = [pr.s, pr.t, ...extra];
  if (ts.every(fitsOneBinding)) {
    return [{ row0: 0, rows: pr.rows, bindings: ts.map((t) => t.binding) }];
  }
  const bs = ts.map((t) => rowBlocks(t, pr.V, `distillKL: ${t.describe()}`));
  return bs[0].map((b, i) => ({
    row0: b.row0,
    rows: b.rows,
    bindings: bs.map((x) => x[i].binding),
  }));
}

function head(pr: Prepared, rows: number, row0: number): Uint32Array {
  return params([rows, pr.V, row0, pr.flags, f32(pr.invT), pr.rows, 0, 0]);
}

function forwardRows(pr: Prepared): KLRows {
  const rowKl = empty([pr.rows], "f32", "klRows");
  const rowStats = empty([pr.rows, 8], "f32", "klRows stats");
  if (pr.rows === 0) return { rowKl, rowStats };
  for (const b of blocksOf(pr)) {
    const [s, t] = b.bindings;
    runtime().dispatch({
      kernel: pr.kernel,
      entryPoint: "distill_fwd",
      constants: { K: rowTileK(pr.V) },
      // without a mask the kernel never reads binding 2: the teacher block stands in (read-only)
      bindings: [
        s,
        t,
        pr.mask?.binding ?? t,
        rowKl.binding,
        rowStats.binding,
        head(pr, b.rows, b.row0),
      ],
      workgroups: grid(b.rows),
    });
  }
  return { rowKl, rowStats };
}

/**
 * Per-row KL of `student` vs `teacher` logits [..., V] over the whole vocabulary, with both
 * entropies and log-sum-exps, no gradient: the full-vocabulary actor–policy KL of the mismatch
 * metrics (src/rl/mismatch.ts) with `student` = the policy and `teacher` = the rollout model.
 * One dispatch per block of rows.
 *
 * @example
 * ```ts
 * const { rowKl } = klRows(policyLogits, actorLogits); // KL(p_actor ‖ p_policy) per row
 * ```
 */
export function klRows(student: Tensor, teacher: Tensor, opts: DistillOptions = {}): KLRows {
  const pr = prepare("klRows", student, teacher, opts);
  const out = forwardRows(pr);
  out.rowKl.adopt(pr.copies);
  return out;
}

/**
 * The distillation loss: mean over kept rows of KL(SG(p_teacher) ‖ p_student) (forward, default)
 * or KL(p_student ‖ SG(p_teacher)) (reverse), softmax over the last axis of `[..., V]` logits,
 * both tempered by `temperature`. Only `student` gets a gradient: forward (p_s − p_t)/T, reverse
 * p_s ⊙ (log p_s − log p_t − KL)/T, per kept row, over the kept rows.
 *
 * Edge cases (never silent): a -inf student logit where the teacher has mass makes that row's
 * forward KL +inf (the loss is then +inf, the row counted in `infRows`; its gradient stays the
 * finite p_s − p_t); in reverse, a -inf teacher logit where the student has mass does the same and
 * the row gets no gradient. A row with a NaN or +inf logit, or all -inf in either model, gives NaN
 * (KL and gradient), counted in `nanRows`. With no kept row the loss is 0 and the gradient 0.
 * Dispatches: one per block of rows and one finalize (forward), one per block (backward).
 *
 * @example
 * ```ts
 * // the teacher never gets a gradient: no detach needed
 * const { loss, stats } = distillKL(rolloutLogits, policyLogits, { mask });
 * backward(loss.mul(lambdaDistill));
 * const s = decodeDistillStats(await read(stats));
 * ```
 */
export function distillKL(
  student: Tensor,
  teacher: Tensor,
  opts: DistillOptions = {},
): DistillResult {
  const pr = prepare("distillKL", student, teacher, opts);
  const { rowKl, rowStats } = forwardRows(pr);
  const rt = runtime();
  const stats = empty([8], "f32", "distillKL stats");
  rt.dispatch({
    kernel: pr.kernel,
    entryPoint: "distill_finalize",
    bindings: [rowKl.binding, pr.mask?.binding ?? rowKl.binding, stats.binding, head(pr, 0, 0)],
    workgroups: [1],
  });
  const loss = reshape(slice(stats, 0, 0, 1), []);
  loss.adopt([rowStats, ...pr.copies]); // saved for the backward
  record(loss, "distillKL", [student], (g) => {
    const dx = empty(pr.s.shape, "f32", "grad");
    const gs = materialize(g);
    if (pr.rows === 0) return [dx];
    const quads = Math.ceil(pr.V / 4);
    for (const b of blocksOf(pr, [dx])) {
      const [s, t, d] = b.bindings;
      const bindings: Binding[] = [
        s,
        t,
        pr.mask?.binding ?? t,
        rowKl.binding,
        rowStats.binding,
        head(pr, b.rows, b.row0),
        gs.binding,
        stats.binding,
        d,
      ];
      launch1d(rt, pr.kernel, "distill_bwd", bindings, b.rows * quads);
    }
    return [dx];
  });
  return { loss, rowKl, stats };
}
