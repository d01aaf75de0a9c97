/**
 * Proposal distributions q made from a target p by controllable noise (SPEC §9, Fig. 2).
 *
 * The paper does not publish its noise model, so three are offered. Each has one strength
 * parameter `s >= 0` with `s = 0` giving `q = p` exactly:
 *
 * | model         | proposal                                  | strength        |
 * |---------------|-------------------------------------------|-----------------|
 * | `logit`       | `q ∝ p · exp(σ ε)`, ε ~ N(0, 1) per token  | σ = s           |
 * | `mixture`     | `q = (1 − β) p + β r`, r ~ Dirichlet(α)    | β = s, s ≤ 1    |
 * | `temperature` | `q ∝ p^(1/T)` (a flatter proposal)         | T = 1 + s       |
 *
 * The random part of a proposal (ε or r) is drawn once into a {@linkcode NoiseDraw} and reused for
 * every strength: KL(p‖q_s) is then a smooth increasing function of s, which is what lets
 * {@linkcode calibrateStrength} solve for a target KL, and it gives common random numbers across
 * the KL levels of a sweep (smooth curves from few trials).
 *
 * @module
 */
import type { Rng } from "../util/rng.ts";

/** The names of the noise models, in the order they are reported. */
export const NOISE_MODELS = ["logit", "mixture", "temperature"] as const;

/** One of {@linkcode NOISE_MODELS}. */
export type NoiseModel = typeof NOISE_MODELS[number];

/** The random part of a proposal, fixed while its strength varies. */
export interface NoiseDraw {
  /** Which model the draw belongs to. */
  model: NoiseModel;
  /** The target distribution p (length V). */
  p: Float64Array;
  /** `logit`: ε per token; `mixture`: the other Dirichlet draw r; `temperature`: unused (empty). */
  noise: Float64Array;
}

/** The largest strength each model is searched up to; beyond it the model is declared unable. */
export const MAX_STRENGTH: Record<NoiseModel, number> = {
  logit: 1e3,
  mixture: 1,
  temperature: 1e6,
};

/**
 * Draws the random part of a proposal for target `p`.
 * `concentration` is the Dirichlet concentration used by the `mixture` model's second draw.
 *
 * @example
 * ```ts
 * const rng = new Rng(1);
 * const p = rng.dirichlet(new Float64Array(100).fill(0.05));
 * const draw = drawNoise("logit", p, rng, 0.05);
 * const q = proposal(draw, 0.1);
 * ```
 */
export function drawNoise(
  model: NoiseModel,
  p: Float64Array,
  rng: Rng,
  concentration: number,
): NoiseDraw {
  if (!(concentration > 0)) {
    throw new RangeError(`concentration must be > 0, got ${concentration}`);
  }
  const V = p.length;
  switch (model) {
    case "logit": {
      const eps = new Float64Array(V);
      for (let i = 0; i < V; i++) eps[i] = rng.normal();
      return { model, p, noise: eps };
    }
    case "mixture":
      return { model, p, noise: rng.dirichlet(new Float64Array(V).fill(concentration)) };
    case "temperature":
      return { model, p, noise: new Float64Array(0) };
    default:
      throw new RangeError(`unknown noise model '${model as string}'`);
  }
}

/**
 * The proposal q for a draw at strength `s` (see the module table). Written into `out` when given,
 * so that a calibration loop allocates nothing.
 */
export function proposal(draw: NoiseDraw, s: number, out?: Float64Array): Float64Array {
  const { p, noise, model } = draw;
  const V = p.length;
  if (!(s >= 0) || s > MAX_STRENGTH[model]) {
    throw new RangeError(`${model} strength must be in [0, ${MAX_STRENGTH[model]}], got ${s}`);
  }
  const q = out ?? new Float64Array(V);
  if (q.length !== V) throw new RangeError(`out has length ${q.length}, expected ${V}`);
  if (s === 0) {
    q.set(p);
    return q;
  }
  if (model === "mixture") {
    for (let i = 0; i < V; i++) q[i] = (1 - s) * p[i] + s * noise[i];
    return s < 1 ? keepSupport(p, q) : q;
  }
  // logit and temperature reweight p in log space; subtract the max exponent so exp never
  // overflows, and keep p_i = 0 at exactly 0 (log 0 = −inf stays −inf).
  const invT = 1 / (1 + s);
  let maxLog = -Infinity;
  for (let i = 0; i < V; i++) {
    const l = model === "logit" ? Math.log(p[i]) + s * noise[i] : Math.log(p[i]) * invT;
    q[i] = l;
    if (l > maxLog) maxLog = l;
  }
  let sum = 0;
  for (let i = 0; i < V; i++) {
    const e = q[i] === -Infinity ? 0 : Math.exp(q[i] - maxLog);
    q[i] = e;
    sum += e;
  }
  for (let i = 0; i < V; i++) q[i] /= sum;
  return keepSupport(p, q);
}

/**
 * Targets drawn with a small Dirichlet concentration hold denormal probabilities (~1e-320) that
 * any reweighting rounds to 0, which would make KL(p‖q) infinite for a change of 1e-320. Such
 * entries get the smallest positive double instead, so q's support stays p's (the proposal models
 * never remove support) and the sum moves by under 1e-320.
 */
function keepSupport(p: Float64Array, q: Float64Array): Float64Array {
  for (let i = 0; i < p.length; i++) if (q[i] === 0 && p[i] > 0) q[i] = Number.MIN_VALUE;
  return q;
}

/** Result of {@linkcode calibrateStrength}. */
export interface Calibration {
  /** The strength found. */
  strength: number;
  /** The proposal at that strength. */
  q: Float64Array;
  /** KL(p‖q) measured at that strength. */
  kl: number;
  /** How many KL evaluations the search took. */
  evaluations: number;
}

/**
 * Finds the strength at which `kl(p, proposal(draw, s))` equals `target` (within `relTol`).
 *
 * KL(p‖q_s) is 0 at s = 0 and increasing in s for all three models (for `logit` it is the
 * cumulant generating function of ε under p minus its tangent; `mixture` is convex in β; for
 * `temperature` the tilted family moves monotonically toward uniform). The search brackets the
 * root by doubling, then runs the Illinois variant of regula falsi, which converges superlinearly
 * here (about 10 evaluations) yet never leaves the bracket. KL is bounded for every model (`mixture`
 * at β = 1 gives KL(p‖r); `temperature` as T → ∞ gives KL(p‖uniform on p's support); `logit` as
 * σ → ∞ concentrates q on the support's largest ε, which a near point-mass p may already be): a
 * target beyond the bound throws a RangeError saying so, as does a target too small for float64 to
 * resolve to `relTol` (KL levels below ~1e-10).
 *
 * `kl` is passed in (the float64 OBRS reference's `klDivergence`) so that this module owns no math
 * of its own beyond the noise models.
 */
export function calibrateStrength(
  draw: NoiseDraw,
  target: number,
  kl: (p: Float64Array, q: Float64Array) => number,
  { relTol = 1e-6, start = 0.1, maxEvaluations = 200 } = {},
): Calibration {
  if (!(target > 0) || !Number.isFinite(target)) {
    throw new RangeError(`target KL must be a positive finite number, got ${target}`);
  }
  const q = new Float64Array(draw.p.length);
  let evaluations = 0;
  const f = (s: number): number => {
    evaluations++;
    return kl(draw.p, proposal(draw, s, q)) - target;
  };
  const cap = MAX_STRENGTH[draw.model];
  let lo = 0, flo = -target;
  let hi = Math.min(start, cap), fhi = f(hi);
  while (fhi < 0) {
    if (hi >= cap) {
      throw new RangeError(
        `${draw.model} noise cannot reach KL ${target} for this target: KL(p||q) is only ` +
          `${kl(draw.p, proposal(draw, cap, q)).toPrecision(3)} at strength ${cap}` +
          (draw.model === "temperature" ? " (the target is too flat)" : ""),
      );
    }
    lo = hi;
    flo = fhi;
    hi = Math.min(hi * 2, cap);
    fhi = f(hi);
  }
  let s = hi, fs = fhi;
  let side = 0; // which end was kept last time: Illinois halves its value when kept twice
  while (Math.abs(fs) > relTol * target && evaluations < maxEvaluations) {
    s = (lo * fhi - hi * flo) / (fhi - flo);
    if (!(s > lo && s < hi)) s = 0.5 * (lo + hi);
    fs = f(s);
    if (fs > 0) {
      hi = s;
      fhi = fs;
      if (side === -1) flo /= 2;
      side = -1;
    } else {
      lo = s;
      flo = fs;
      if (side === 1) fhi /= 2;
      side = 1;
    }
    if (hi - lo <= 1e-15 * Math.max(1, hi)) break;
  }
  const out = proposal(draw, s);
  const reached = kl(draw.p, out);
  // Tiny targets (below ~1e-10) sit under float64's rounding of KL itself: the bracket collapses
  // before the tolerance is met. Say so rather than return a q whose KL is off (or 0).
  if (!(Math.abs(reached - target) <= relTol * target)) {
    throw new RangeError(
      `${draw.model} noise cannot calibrate KL ${target} to ${relTol} relative in float64 ` +
        `(the closest was ${reached.toPrecision(3)}); use larger KL levels`,
    );
  }
  return { strength: s, q: out, kl: reached, evaluations };
}
