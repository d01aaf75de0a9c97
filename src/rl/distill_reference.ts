/**
 * Float64 reference of the rollout model's distillation loss (SPEC §6): the KL between a student's
 * and a teacher's softmax over the whole vocabulary, per row and averaged over kept rows, and its
 * gradient wrt the student's logits. The GPU op (src/rl/distill.ts) is tested against it. It knows
 * nothing of the GPU.
 *
 * Conventions (as src/obrs/reference/divergence.ts): 0·log 0 = 0, so a -inf logit of the model a
 * KL averages over contributes 0; mass where the other model has a -inf logit makes the row's KL
 * +inf. A row with a NaN or +inf logit, or all -inf in either model, is invalid: its KL, entropies
 * and gradient are NaN.
 *
 * @module
 */

/** Which KL the loss is: "forward" = KL(SG(p_teacher) ‖ p_student) (the paper's Eq. 8), "reverse" = KL(p_student ‖ SG(p_teacher)). */
export type KLDirection = "forward" | "reverse";

/** Options of {@link distillKLRef} (and, the same, of the GPU `distillKL`). */
export interface DistillRefOptions {
  /** Default "forward". */
  direction?: KLDirection;
  /** Both logits are divided by it before the softmax (> 0, default 1). The loss is not rescaled by T². */
  temperature?: number;
  /** [N]: 0 drops a row from the mean (and its gradient); any other value keeps it. */
  mask?: ArrayLike<number>;
}

/** Per-row and batch values of {@link distillKLRef}. */
export interface DistillRefResult {
  /** Mean of `rowKl` over kept rows; 0 when none is kept. */
  loss: number;
  /** [N] the loss direction's KL per row (0 for dropped rows). */
  rowKl: Float64Array;
  /** [N] KL(p_t ‖ p_s) and KL(p_s ‖ p_t) per row (0 for dropped rows). */
  forwardKl: Float64Array;
  /** See `forwardKl`. */
  reverseKl: Float64Array;
  /** [N] entropies of the tempered student and teacher (0 for dropped rows). */
  entropyStudent: Float64Array;
  /** See `entropyStudent`. */
  entropyTeacher: Float64Array;
  /** Kept rows. */
  kept: number;
  /** Kept rows whose KL is +inf. */
  infRows: number;
  /** Kept rows whose KL is NaN (invalid logits). */
  nanRows: number;
  /** [N·V] d loss / d student logits (raw, before the temperature). */
  grad: Float64Array;
}

/**
 * Log-softmax of one row of `x / T` into `out`; false (and `out` untouched) when the row is invalid
 * (a NaN or +inf entry, or every entry -inf).
 */
export function rowLogSoftmax(
  x: ArrayLike<number>,
  base: number,
  V: number,
  invT: number,
  out: Float64Array,
): boolean {
  let max = -Infinity;
  for (let j = 0; j < V; j++) {
    const v = x[base + j] * invT;
    if (Number.isNaN(v) || v === Infinity) return false;
    if (v > max) max = v;
  }
  if (max === -Infinity) return false;
  let sum = 0;
  for (let j = 0; j < V; j++) sum += Math.exp(x[base + j] * invT - max);
  const ls = Math.log(sum);
  for (let j = 0; j < V; j++) out[j] = (x[base + j] * invT - max) - ls;
  return true;
}

// Σ_j q_j (lq_j − lo_j) (lo = null: − Σ_j q_j lq_j, the entropy), with 0 where q_j = 0; never
// negative (rounding can leave a tiny negative sum when the rows agree).
function klTerm(lq: Float64Array, lo: Float64Array | null): number {
  let s = 0;
  for (let j = 0; j < lq.length; j++) {
    const q = Math.exp(lq[j]);
    if (q > 0) s += q * (lo ? lq[j] - lo[j] : -lq[j]);
  }
  return Math.max(0, s);
}

/** Throws unless `temperature` and `direction` are valid; returns 1 / T. */
export function checkDistillOptions(
  op: string,
  o: { direction?: KLDirection; temperature?: number },
): number {
  const dir = o.direction ?? "forward";
  if (dir !== "forward" && dir !== "reverse") {
    throw new RangeError(`${op}: direction "${dir}" must be "forward" or "reverse"`);
  }
  const T = o.temperature ?? 1;
  if (!(Number.isFinite(T) && T > 0)) {
    throw new RangeError(`${op}: temperature ${T} must be a finite number > 0`);
  }
  return 1 / T;
}

/**
 * The distillation KL of `student` and `teacher` logits (row-major [N, V]) in float64, with its
 * gradient wrt the student's logits. Forward: d/dz_s = (p_s − p_t) / T per kept row, divided by the
 * kept rows; reverse: p_s ⊙ (log p_s − log p_t − KL(s ‖ t)) / T, and 0 on a row whose reverse KL
 * is +inf (no finite gradient exists there).
 *
 * @example
 * ```ts
 * const r = distillKLRef(new Float64Array([0, 0]), new Float64Array([0, Math.log(3)]), 1, 2);
 * r.loss; // KL([.25, .75] ‖ [.5, .5]) = 0.1308…
 * ```
 */
export function distillKLRef(
  student: ArrayLike<number>,
  teacher: ArrayLike<number>,
  N: number,
  V: number,
  opts: DistillRefOptions = {},
): DistillRefResult {
  const invT = checkDistillOptions("distillKLRef", opts);
  if (student.length !== N * V || teacher.length !== N * V) {
    throw new RangeError(
      `distillKLRef: student (${student.length}) and teacher (${teacher.length}) need N·V = ${
        N * V
      } values`,
    );
  }
  if (opts.mask && opts.mask.length !== N) {
    throw new RangeError(`distillKLRef: mask has ${opts.mask.length} values for ${N} rows`);
  }
  const reverse = opts.direction === "reverse";
  const res: DistillRefResult = {
    loss: 0,
    rowKl: new Float64Array(N),
    forwardKl: new Float64Array(N),
    reverseKl: new Float64Array(N),
    entropyStudent: new Float64Array(N),
    entropyTeacher: new Float64Array(N),
    kept: 0,
    infRows: 0,
    nanRows: 0,
    grad: new Float64Array(N * V),
  };
  const ls = new Float64Array(V), lt = new Float64Array(V);
  let sum = 0;
  const valid: boolean[] = [];
  for (let r = 0; r < N; r++) {
    valid.push(false);
    if (opts.mask && opts.mask[r] === 0) continue;
    res.kept++;
    const ok = rowLogSoftmax(student, r * V, V, invT, ls) &&
      rowLogSoftmax(teacher, r * V, V, invT, lt);
    if (!ok) {
      for (const a of [res.rowKl, res.forwardKl, res.reverseKl]) a[r] = NaN;
      res.entropyStudent[r] = res.entropyTeacher[r] = NaN;
      res.nanRows++;
      sum = NaN;
      continue;
    }
    valid[r] = true;
    res.forwardKl[r] = klTerm(lt, ls);
    res.reverseKl[r] = klTerm(ls, lt);
    res.entropyStudent[r] = klTerm(ls, null);
    res.entropyTeacher[r] = klTerm(lt, null);
    res.rowKl[r] = reverse ? res.reverseKl[r] : res.forwardKl[r];
    if (res.rowKl[r] === Infinity) res.infRows++;
    sum += res.rowKl[r];
  }
  res.loss = res.kept === 0 ? 0 : sum / res.kept;
  const g = invT / Math.max(1, res.kept);
  for (let r = 0; r < N; r++) {
    if (opts.mask && opts.mask[r] === 0) continue;
    if (!valid[r]) {
      res.grad.fill(NaN, r * V, (r + 1) * V);
      continue;
    }
    rowLogSoftmax(student, r * V, V, invT, ls);
    rowLogSoftmax(teacher, r * V, V, invT, lt);
    const kl = res.reverseKl[r];
    for (let j = 0; j < V; j++) {
      const ps = Math.exp(ls[j]);
      let d: number;
      if (!reverse) d = ps - Math.exp(lt[j]);
      else if (kl === Infinity || ps === 0) d = 0;
      else d = ps * (ls[j] - lt[j] - kl);
      res.grad[r * V + j] = d * g;
    }
  }
  return res;
}
