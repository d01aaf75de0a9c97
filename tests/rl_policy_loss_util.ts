// Random policy-loss batches shared by the reference and GPU tests: f32-exact values (the GPU and
// the float64 reference read the same numbers), GRPO-like advantages (one per sequence, some 0,
// both signs, a few per-token ones), weights in (0, 3), masks with rejected tokens, fully rejected
// sequences and padded tails holding NaN, log-ratios beyond the ±20 clamp and −Inf log-probs.
import type { PolicyLossRefInputs } from "../src/rl/policy_loss_reference.ts";
import type { Rng } from "../src/util/rng.ts";

/** What {@link randomPolicyBatch} mixes in. */
export interface BatchOptions {
  /** Kept tokens with NaN/+Inf inputs and masks other than 0/1 (default false). */
  nonFinite?: boolean;
  /**
   * Keep every ratio at least 1e-3 (relative) from `kinks` and |log r| at least 1e-3 from 20: the
   * derivative jumps there, and f32 rounding could move a token across a kink relative to the
   * float64 reference (default false).
   */
  awayFromKinks?: boolean;
  /** Some −Inf log-probs (ℓ_new or ℓ_ref; default true). Finite differences need false. */
  negInf?: boolean;
  /** Ratios to stay away from: 1 − ε_low and 1 + ε_high (default [0.8, 1.28]). */
  kinks?: number[];
  /** Fraction of tokens whose |log r| exceeds 20 (default 0.05). */
  beyondClamp?: number;
}

/** A random `[B, T]` batch as plain arrays (see the file comment). */
export function randomPolicyBatch(
  rng: Rng,
  B: number,
  T: number,
  o: BatchOptions = {},
): PolicyLossRefInputs & {
  logpRef: Float64Array;
  logpNew: Float64Array;
  advantages: Float64Array;
  weight: Float64Array;
  mask: Float64Array;
} {
  const n = B * T, f = Math.fround;
  const kinks = o.kinks ?? [0.8, 1.28];
  const beyond = o.beyondClamp ?? 0.05;
  const logpNew = new Float64Array(n), logpRef = new Float64Array(n);
  const advantages = new Float64Array(n), weight = new Float64Array(n), mask = new Float64Array(n);
  for (let b = 0; b < B; b++) {
    const kind = rng.int(8);
    // GRPO: one advantage per sequence; some exactly 0 (a group with equal rewards)
    const seqAdv = kind === 0 ? 0 : rng.normal() * 1.5;
    const allRejected = kind === 1;
    const len = T - (rng.uniform() < 0.3 ? rng.int(T) : 0); // padded tail
    for (let t = 0; t < T; t++) {
      const i = b * T + t;
      logpRef[i] = f(-Math.abs(rng.normal()) * 3 - 0.01);
      let d = rng.uniform() < beyond
        ? (rng.uniform() < 0.5 ? -1 : 1) * (20.5 + 10 * rng.uniform())
        : rng.normal() * 0.35;
      if (o.awayFromKinks) d = awayFrom(d, kinks);
      logpNew[i] = f(logpRef[i] + d);
      if (o.awayFromKinks) {
        // the f32 rounding of ℓ_new can move d by ~1e-7: recheck on the rounded value
        const d32 = logpNew[i] - logpRef[i];
        if (awayFrom(d32, kinks) !== d32) logpNew[i] = logpRef[i];
      }
      if (o.negInf ?? true) {
        const u = rng.uniform();
        if (u < 0.03) logpNew[i] = -Infinity;
        else if (u < 0.05) logpRef[i] = -Infinity;
        else if (u < 0.06) logpNew[i] = logpRef[i] = -Infinity;
      }
      advantages[i] = f(rng.uniform() < 0.15 ? rng.normal() : seqAdv);
      weight[i] = f(rng.uniform() < 0.3 ? 1 : 3 * rng.uniform());
      mask[i] = t >= len || allRejected ? 0 : rng.uniform() < 0.75 ? 1 : 0;
      if (t >= len) {
        // padding holds garbage the loss must never read into a NaN
        logpNew[i] = NaN;
        advantages[i] = NaN;
      }
      if (o.nonFinite && mask[i] === 1 && rng.uniform() < 0.08) {
        const which = rng.int(5);
        if (which === 0) logpNew[i] = NaN;
        else if (which === 1) logpRef[i] = Infinity;
        else if (which === 2) advantages[i] = NaN;
        else if (which === 3) weight[i] = -Infinity;
        else mask[i] = 2;
      }
    }
  }
  return { B, T, logpNew, logpRef, advantages, weight, mask };
}

// d moved so that exp(d) is ≥ 1e-3 (relative) from every kink and |d| ≥ 1e-3 from 20.
function awayFrom(d: number, kinks: number[]): number {
  for (let k = 0; k < 4; k++) {
    const r = Math.exp(d);
    const near = kinks.find((q) => Math.abs(r - q) < 1e-3 * q);
    if (near !== undefined) d = Math.log(near) + (r >= near ? 2e-3 : -2e-3);
    else if (Math.abs(Math.abs(d) - 20) < 1e-3) d += d > 0 ? 2e-3 : -2e-3;
    else return d;
  }
  return d;
}
