/**
 * Float64 reference of one sampling step on one row of logits: temperature, top-k, top-p, the
 * inverse-CDF draw from a given uniform, the processed and raw log-probs of the drawn token, and
 * the top-k capture. `kernels/sample_row.wgsl` implements exactly these rules; its tests compare
 * against this file.
 *
 * The rules (also the behaviour policy recorded with every rollout token, SPEC §10):
 * - temperature 0 is greedy: a point mass on the largest logit (the lowest id among ties);
 * - otherwise z = logit / temperature;
 * - top-k (0 < k < V) keeps every z ≥ the k-th largest z (ties at the boundary are all kept, as in
 *   Hugging Face's `TopKLogitsWarper`);
 * - top-p (p < 1) then keeps every z ≥ τ, τ the largest value of z among the kept ones whose
 *   kept mass {z ≥ τ} reaches p of the top-k mass (the smallest nucleus, boundary ties kept);
 * - the processed distribution is softmax(z) renormalised over the kept set, -inf elsewhere;
 * - the draw is the first kept id i (in id order) whose cumulative processed probability exceeds u;
 * - the raw log-prob is log_softmax(logits) at the token (temperature 1, nothing truncated).
 *
 * @module
 */

/** Sampling settings of a rollout (recorded with it). */
export interface SamplingSettings {
  /** Temperature ≥ 0; 0 is greedy. */
  temperature: number;
  /** Keep the k most likely tokens; 0 turns it off. */
  topK: number;
  /** Nucleus mass in (0, 1]; 1 turns it off. */
  topP: number;
}

/** Defaults: plain sampling from the model (temperature 1, no truncation). */
export const DEFAULT_SAMPLING: Readonly<SamplingSettings> = { temperature: 1, topK: 0, topP: 1 };

/**
 * Smallest non-zero temperature. The kernels divide f32 logit differences by it: far below this
 * the quotient overflows (or T itself flushes to 0 as an f32) and the processed log-probs become
 * NaN. Use 0 for greedy.
 */
export const MIN_TEMPERATURE = 1e-6;

/** Throws a one-sentence error for settings outside their ranges. */
export function validateSampling(s: SamplingSettings, vocab?: number): SamplingSettings {
  if (!(s.temperature >= 0) || !Number.isFinite(s.temperature)) {
    throw new RangeError(
      `sampling: temperature must be a finite number >= 0, got ${s.temperature}`,
    );
  }
  if (s.temperature > 0 && s.temperature < MIN_TEMPERATURE) {
    throw new RangeError(
      `sampling: temperature must be 0 (greedy) or at least 1e-6, got ${s.temperature}`,
    );
  }
  if (!Number.isInteger(s.topK) || s.topK < 0) {
    throw new RangeError(`sampling: topK must be an integer >= 0 (0 = off), got ${s.topK}`);
  }
  if (vocab !== undefined && s.topK > vocab) {
    throw new RangeError(`sampling: topK ${s.topK} exceeds the vocabulary size ${vocab}`);
  }
  if (!(s.topP > 0 && s.topP <= 1)) {
    throw new RangeError(`sampling: topP must be in (0, 1], got ${s.topP}`);
  }
  return s;
}

/** The processed distribution's log-probs (float64, -inf outside the kept set). */
export function processedLogProbs(logits: ArrayLike<number>, s: SamplingSettings): Float64Array {
  validateSampling(s, logits.length);
  const V = logits.length;
  const out = new Float64Array(V).fill(-Infinity);
  if (V === 0) return out;
  if (s.temperature === 0) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
    out[best] = 0;
    return out;
  }
  const z = Float64Array.from(logits, (x) => x / s.temperature);
  const sorted = Float64Array.from(z).sort().reverse();
  let tau = -Infinity;
  if (s.topK > 0 && s.topK < V) tau = sorted[s.topK - 1];
  const m = sorted[0];
  let massK = 0;
  for (let i = 0; i < V; i++) if (z[i] >= tau) massK += Math.exp(z[i] - m);
  if (s.topP < 1) {
    // Walk distinct values from the top; the first whose cumulative mass reaches p is τ.
    let acc = 0;
    for (let j = 0; j < V; j++) {
      if (sorted[j] < tau) break;
      acc += Math.exp(sorted[j] - m);
      const last = j + 1 === V || sorted[j + 1] !== sorted[j];
      if (last && acc >= s.topP * massK) {
        tau = sorted[j];
        break;
      }
    }
  }
  let mass = 0;
  for (let i = 0; i < V; i++) if (z[i] >= tau) mass += Math.exp(z[i] - m);
  const lse = m + Math.log(mass);
  for (let i = 0; i < V; i++) if (z[i] >= tau) out[i] = z[i] - lse;
  return out;
}

/** log_softmax of a row in float64. */
export function logSoftmaxRef(logits: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < logits.length; i++) m = Math.max(m, logits[i]);
  let s = 0;
  for (let i = 0; i < logits.length; i++) s += Math.exp(logits[i] - m);
  const lse = m + Math.log(s);
  return Float64Array.from(logits, (x) => x - lse);
}

/** The ids of the `k` largest logits, best first, ties to the lower id. */
export function topKIds(logits: ArrayLike<number>, k: number): Int32Array {
  const ids = Array.from({ length: logits.length }, (_, i) => i);
  ids.sort((a, b) => (logits[b] - logits[a]) || (a - b));
  return Int32Array.from(ids.slice(0, k));
}

/** One reference sampling step. */
export interface SampleStepRef {
  /** The drawn token. */
  token: number;
  /** Its log-prob under the processed distribution. */
  logProb: number;
  /** Its log-prob under the raw model (log_softmax of the logits). */
  rawLogProb: number;
  /** Distance of `u` to the nearest cumulative boundary (a GPU float32 draw may differ below ~1e-6). */
  margin: number;
  /** Top-`captureK` ids of the logits (best first, ties to the lower id). */
  topIds: Int32Array;
  /** Processed log-probs at `topIds` (-inf where truncated). */
  topLogProbs: Float64Array;
}

/**
 * Samples one token from `logits` with the uniform `u` in [0, 1) (the kernel uses
 * `uniformAt(seed, sequence, generated index)`), and captures the top `captureK`.
 *
 * @example
 * ```ts
 * const r = sampleStepRef(row, { temperature: 0.8, topK: 20, topP: 0.95 }, uniformAt(7, 0, 0), 5);
 * ```
 */
export function sampleStepRef(
  logits: ArrayLike<number>,
  s: SamplingSettings,
  u: number,
  captureK: number,
): SampleStepRef {
  const lp = processedLogProbs(logits, s);
  const V = logits.length;
  let token = -1;
  let acc = 0;
  let margin = Infinity;
  let lastKept = -1;
  for (let i = 0; i < V; i++) {
    if (lp[i] === -Infinity) continue;
    lastKept = i;
    margin = Math.min(margin, Math.abs(acc - u));
    acc += Math.exp(lp[i]);
    if (token < 0 && acc > u) token = i;
  }
  margin = Math.min(margin, Math.abs(acc - u));
  if (token < 0) token = lastKept; // u beyond the rounded total: the last kept id
  const raw = logSoftmaxRef(logits);
  const topIds = topKIds(logits, captureK);
  return {
    token,
    logProb: lp[token],
    rawLogProb: raw[token],
    margin,
    topIds,
    topLogProbs: Float64Array.from(topIds, (i) => lp[i]),
  };
}
