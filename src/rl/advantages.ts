/**
 * GRPO advantages (SPEC §7): n samples per prompt, each sample's reward minus its group's mean,
 * optionally divided by the group's standard deviation (+ε).
 *
 * They are computed on the host in float64 (this module is its own reference): the rewards are
 * host values (the reward functions run on decoded text), there are only P·n of them, and the
 * trainer needs them on the host anyway to log reward statistics. What the GPU needs is one value
 * per token, so {@link advantagesTensor} broadcasts each sequence's advantage over its response
 * tokens and uploads the `[B, T]` result in one write (no kernel, no readback).
 *
 * @module
 */
import { type Tensor, tensor } from "../tensor/mod.ts";

/** Options of {@link grpoAdvantages}. */
export interface GrpoOptions {
  /** Divide by the group's std (+ε) (default true; false: Dr. GRPO-style mean-centring only). */
  normalizeStd?: boolean;
  /**
   * "sample" (default): the unbiased std, Σ(r − mean)² / (n − 1), as `torch.std` computes it in
   * TRL's and verl's GRPO (the DeepSeekMath paper says only "standard deviation"); "population":
   * Σ(r − mean)² / n (a group's normalised advantages then have unit mean square).
   */
  std?: "sample" | "population";
  /** Added to the std before dividing (default 1e-6; ≥ 0). */
  eps?: number;
}

/** What {@link grpoAdvantages} returns. */
export interface GrpoAdvantages {
  /** [P·n] one advantage per sample, in the rewards' order. */
  advantages: Float64Array;
  /** [P] each group's mean reward. */
  mean: Float64Array;
  /** [P] each group's std (of the kind chosen; 0 for a group of one). */
  std: Float64Array;
  /** Groups whose rewards are all equal: their advantages are exactly 0 (no learning signal). */
  flatGroups: number;
}

/**
 * GRPO advantages of `rewards` laid out as [P, n] (prompt-major: samples of one prompt adjacent).
 * A group whose rewards are all equal gets exactly 0 (never 0/0); a group of one sample gets 0.
 *
 * @example
 * ```ts
 * const { advantages } = grpoAdvantages([1, 0, 0, 1, 1, 1], 3, { std: "population" });
 * // group 1: mean 1/3, std √2/3 → [1.414, -0.707, -0.707]; group 2 all equal → [0, 0, 0]
 * ```
 */
export function grpoAdvantages(
  rewards: ArrayLike<number>,
  groupSize: number,
  opts: GrpoOptions = {},
): GrpoAdvantages {
  const n = groupSize;
  if (!(Number.isInteger(n) && n >= 1)) {
    throw new RangeError(`grpoAdvantages: groupSize ${n} must be an integer >= 1`);
  }
  if (rewards.length % n !== 0) {
    throw new RangeError(
      `grpoAdvantages: ${rewards.length} rewards are not whole groups of ${n} samples`,
    );
  }
  const normalize = opts.normalizeStd ?? true;
  const kind = opts.std ?? "sample";
  const eps = opts.eps ?? 1e-6;
  if (kind !== "sample" && kind !== "population") {
    throw new RangeError(`grpoAdvantages: std "${kind}" must be "sample" or "population"`);
  }
  if (!(Number.isFinite(eps) && eps >= 0)) {
    throw new RangeError(`grpoAdvantages: eps ${eps} must be a finite number >= 0`);
  }
  const P = rewards.length / n;
  for (let i = 0; i < rewards.length; i++) {
    if (!Number.isFinite(rewards[i])) {
      throw new RangeError(
        `grpoAdvantages: reward ${rewards[i]} at index ${i} (prompt ${Math.floor(i / n)}, sample ${
          i % n
        }) is not finite`,
      );
    }
  }
  const out: GrpoAdvantages = {
    advantages: new Float64Array(rewards.length),
    mean: new Float64Array(P),
    std: new Float64Array(P),
    flatGroups: 0,
  };
  for (let g = 0; g < P; g++) {
    const base = g * n;
    let sum = 0, lo = Infinity, hi = -Infinity;
    for (let i = 0; i < n; i++) {
      const r = rewards[base + i];
      sum += r;
      lo = Math.min(lo, r);
      hi = Math.max(hi, r);
    }
    const mean = sum / n;
    // two passes (mean, then squared deviations): no cancellation for rewards far from 0
    let ss = 0;
    for (let i = 0; i < n; i++) ss += (rewards[base + i] - mean) ** 2;
    const std = n === 1 ? 0 : Math.sqrt(ss / (kind === "sample" ? n - 1 : n));
    out.mean[g] = mean;
    out.std[g] = std;
    if (lo === hi) {
      out.flatGroups++; // exactly 0, even where sum / n does not round back to the common value
      continue;
    }
    const div = normalize ? std + eps : 1;
    for (let i = 0; i < n; i++) out.advantages[base + i] = (rewards[base + i] - mean) / div;
  }
  return out;
}

/** Which tokens of each row of `[B, T]` carry its sequence's advantage: `[start_b, end_b)`. */
export interface TokenSpans {
  /** [B] first response token of each row (default 0). */
  start?: ArrayLike<number>;
  /** [B] one past the last response token of each row (default T). */
  end?: ArrayLike<number>;
}

/**
 * Per-token advantages `[B·T]` (row-major) on the host: row b holds `adv[b]` on tokens
 * `[start_b, end_b)` and 0 elsewhere (prompt and padding), as f32.
 *
 * @example
 * ```ts
 * broadcastAdvantages([0.5, -1], 4, { start: [1, 0], end: [3, 4] });
 * // [0, .5, .5, 0,  -1, -1, -1, -1]
 * ```
 */
export function broadcastAdvantages(
  adv: ArrayLike<number>,
  T: number,
  spans: TokenSpans = {},
): Float32Array {
  const B = adv.length;
  if (!(Number.isInteger(T) && T >= 0)) {
    throw new RangeError(`broadcastAdvantages: T ${T} must be an integer >= 0`);
  }
  for (const [name, a] of [["start", spans.start], ["end", spans.end]] as const) {
    if (a && a.length !== B) {
      throw new RangeError(`broadcastAdvantages: ${name} has ${a.length} values for ${B} rows`);
    }
  }
  const out = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    const s = spans.start?.[b] ?? 0, e = spans.end?.[b] ?? T;
    if (!(Number.isInteger(s) && Number.isInteger(e) && 0 <= s && s <= e && e <= T)) {
      throw new RangeError(
        `broadcastAdvantages: row ${b} span [${s}, ${e}) is not integers within [0, ${T}]`,
      );
    }
    if (!Number.isFinite(adv[b])) {
      throw new RangeError(`broadcastAdvantages: advantage ${adv[b]} of row ${b} is not finite`);
    }
    out.fill(adv[b], b * T + s, b * T + e);
  }
  return out;
}

/**
 * {@link broadcastAdvantages} uploaded as an f32 `[B, T]` tensor (one write), for the policy loss.
 *
 * @example
 * ```ts
 * const { advantages } = grpoAdvantages(rewards, n);
 * const A = advantagesTensor(advantages, T, { start: promptLens, end: seqLens });
 * ```
 */
export function advantagesTensor(adv: ArrayLike<number>, T: number, spans?: TokenSpans): Tensor {
  return tensor(broadcastAdvantages(adv, T, spans), [adv.length, T]);
}
