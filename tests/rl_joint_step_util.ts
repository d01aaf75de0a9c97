/**
 * Helpers of tests/rl_joint_step_test.ts: the trainer's input sequences, float64 logits and
 * log-probs at the completion positions, finite-difference gradient checks, disposal of a step.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Tensor } from "../src/tensor/mod.ts";
import { referenceLogits, type RefParams } from "../src/nn/reference.ts";
import { completion } from "../src/nn/rollout.ts";
import type { Transformer } from "../src/nn/transformer.ts";
import { logSoftmax } from "../src/obrs/reference/mod.ts";
import {
  type JointBatch,
  type JointSetup,
  PAD_ID,
  type recordJointLoss,
} from "../bench/rl/joint_step.ts";
import type { Rng } from "../src/util/rng.ts";

/** f32 → f64 (exact). */
export const f64 = (x: ArrayLike<number>) => Float64Array.from(x);

/** The trainer's input sequences [B][P + T − 1] (prompt, then the completion up to T − 1 tokens). */
export function sequences(s: JointSetup, b: JointBatch): Int32Array[] {
  const P = s.o.promptLength, T = s.o.maxNew;
  return s.prompts.map((p, r) => {
    const seq = new Int32Array(P + T - 1).fill(PAD_ID);
    seq.set(p);
    seq.set(completion(b.rollout, r).subarray(0, T - 1), P);
    return seq;
  });
}

/** Float64 logits [B·T·V] at the completion positions. */
export function refLogits(
  model: Transformer,
  p: RefParams,
  seqs: Int32Array[],
  P: number,
  T: number,
) {
  const V = model.config.vocabSize;
  const out = new Float64Array(seqs.length * T * V);
  seqs.forEach((seq, b) => {
    const rows = referenceLogits(model.config, p, seq);
    for (let t = 0; t < T; t++) out.set(rows[P - 1 + t], (b * T + t) * V);
  });
  return out;
}

/** ℓ of `ids` under float64 logits [N·V]. */
export function gatherLogp(logits: Float64Array, ids: ArrayLike<number>, V: number): Float64Array {
  const ls = logSoftmax(logits, V);
  return Float64Array.from(ids, (id, i) => ls[i * V + id]);
}

/** Max |a − b| (where `keep` is nonzero, when given). */
export function maxAbs(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  keep?: ArrayLike<number>,
): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (keep && !keep[i]) continue;
    m = Math.max(m, Math.abs(a[i] - b[i]));
  }
  return m;
}

/** Relative error, floored at 1e-12. */
export function relErr(a: number, b: number): number {
  return a === b ? 0 : Math.abs(a - b) / Math.max(1e-12, Math.abs(b));
}

/**
 * Central finite differences (float64, h = 1e-5) of `loss` at two coordinates of every parameter
 * (its largest GPU gradient and a random one) against the GPU gradients; returns the max errors.
 */
export function checkGradients(
  label: string,
  p: RefParams,
  grads: Map<string, Float32Array>,
  loss: (p: RefParams) => number,
  rng: Rng,
): { abs: number; rel: number; checked: number } {
  const h = 1e-5;
  let abs = 0, rel = 0, checked = 0;
  for (const [name, w] of p) {
    const g = grads.get(name)!;
    let top = 0;
    for (let j = 1; j < g.length; j++) if (Math.abs(g[j]) > Math.abs(g[top])) top = j;
    for (const j of [top, rng.int(w.length)]) {
      const keep = w[j];
      w[j] = keep + h;
      const up = loss(p);
      w[j] = keep - h;
      const dn = loss(p);
      w[j] = keep;
      const fd = (up - dn) / (2 * h);
      const err = Math.abs(fd - g[j]);
      assert.ok(
        err < 1e-5 + 1e-3 * Math.abs(fd),
        `${label}: d L / d ${name}[${j}]: GPU ${g[j]} vs finite difference ${fd}`,
      );
      abs = Math.max(abs, err);
      if (Math.abs(fd) > 1e-4) rel = Math.max(rel, err / Math.abs(fd));
      checked++;
    }
  }
  return { abs, rel, checked };
}

/** Releases every tensor of a recorded step. */
export function disposeStep(j: ReturnType<typeof recordJointLoss>): void {
  const ts: Tensor[] = [
    j.logitsPolicy,
    j.logitsActor,
    j.logpPolicy,
    j.logpActor,
    j.jackpot.mask,
    j.jackpot.rho,
    j.jackpot.w,
    j.jackpot.stats,
    j.policyTerm.loss,
    j.policyTerm.stats,
    j.policyTerm.terms,
    j.actorTerm.loss,
    j.actorTerm.stats,
    j.actorTerm.terms,
    j.distillTerm.loss,
    j.distillTerm.rowKl,
    j.distillTerm.stats,
    j.loss,
  ];
  if (j.jackpot.rowData) ts.push(j.jackpot.rowData);
  for (const t of ts) t.dispose();
}
