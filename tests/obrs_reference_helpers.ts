/**
 * Random inputs for the OBRS reference property tests: (p, q) pairs over several vocabulary sizes and
 * Dirichlet concentrations, in several relationships (independent, close mixtures, logit noise,
 * zeros in either), and [N, V] log-probability batches with ties, -Infinity, peaked and flat rows.
 *
 * @module
 */
import { Rng } from "../src/util/rng.ts";

/** Vocabulary sizes every property is checked on. */
export const VOCABS = [2, 7, 50, 1000];
/** Dirichlet concentrations every property is checked on. */
export const CONCENTRATIONS = [0.05, 0.5, 5];

/** A random (p, q) pair and where it came from. */
export interface Pair {
  p: Float64Array;
  q: Float64Array;
  vocab: number;
  concentration: number;
  kind: string;
}

function normalise(x: Float64Array): Float64Array {
  let s = 0;
  for (const v of x) s += v;
  for (let i = 0; i < x.length; i++) x[i] /= s;
  return x;
}

function dirichlet(rng: Rng, vocab: number, concentration: number): Float64Array {
  return rng.dirichlet(new Float64Array(vocab).fill(concentration));
}

/** One random pair whose supports overlap (so Z > 0 for every λ). */
export function randomPair(rng: Rng, vocab: number, concentration: number): Pair {
  const p = dirichlet(rng, vocab, concentration);
  let q: Float64Array;
  const kind = ["independent", "mixture", "logit-noise", "zeros"][rng.int(4)];
  if (kind === "independent") {
    q = dirichlet(rng, vocab, concentration);
  } else if (kind === "mixture") {
    const other = dirichlet(rng, vocab, concentration);
    const m = rng.uniform();
    q = normalise(p.map((v, i) => (1 - m) * v + m * other[i]));
  } else if (kind === "logit-noise") {
    const sigma = [0.05, 0.3, 1.5][rng.int(3)];
    q = normalise(p.map((v) => v * Math.exp(sigma * rng.normal())));
  } else {
    q = dirichlet(rng, vocab, concentration);
    // Zero out entries of p and of q independently, keeping one shared index positive in both.
    const keep = rng.int(vocab);
    for (let i = 0; i < vocab; i++) {
      if (i === keep) continue;
      if (rng.uniform() < 0.3) p[i] = 0;
      if (rng.uniform() < 0.3) q[i] = 0;
    }
    if (p[keep] === 0) p[keep] = 1e-3;
    if (q[keep] === 0) q[keep] = 1e-3;
    normalise(p);
    normalise(q);
  }
  if (!hasOverlap(p, q)) {
    // Dirichlet draws at 0.05 can underflow to point masses; make the supports meet.
    const i = rng.int(vocab);
    p[i] += 0.5;
    q[i] += 0.5;
    normalise(p);
    normalise(q);
  }
  return { p, q, vocab, concentration, kind };
}

function hasOverlap(p: Float64Array, q: Float64Array): boolean {
  for (let i = 0; i < p.length; i++) if (p[i] > 0 && q[i] > 0) return true;
  return false;
}

/**
 * `perCell` pairs for every (V, concentration) cell; fewer for V = 1000 when `largeFraction` < 1 to
 * keep the files fast.
 */
export function* pairs(seed: number, perCell: number, largeFraction = 0.25): Generator<Pair> {
  const rng = new Rng(seed);
  for (const vocab of VOCABS) {
    for (const concentration of CONCENTRATIONS) {
      const count = vocab >= 1000 ? Math.max(1, Math.round(perCell * largeFraction)) : perCell;
      for (let j = 0; j < count; j++) yield randomPair(rng, vocab, concentration);
    }
  }
}

/** |a − b| / max(|a|, |b|, tiny); 0 when both are equal (including equal infinities). */
export function relErr(a: number, b: number): number {
  if (a === b) return 0;
  return Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-300);
}

/** Max of rel errors over two arrays. */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, relErr(a[i], b[i]));
  return m;
}

/** Log-softmax of raw logits rows; local so tests do not depend on the code under test for inputs. */
function logSoftmaxRows(x: Float64Array, vocab: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / vocab; r++) {
    let max = -Infinity;
    for (let v = 0; v < vocab; v++) max = Math.max(max, x[r * vocab + v]);
    let s = 0;
    for (let v = 0; v < vocab; v++) s += Math.exp(x[r * vocab + v] - max);
    for (let v = 0; v < vocab; v++) out[r * vocab + v] = x[r * vocab + v] - max - Math.log(s);
  }
  return out;
}

/** A random batch of [N, V] log-probability rows for p_inf, p_ref, p_new plus sampled ids. */
export interface RandomBatch {
  vocab: number;
  logpInf: Float64Array;
  logpRef: Float64Array;
  logpNew: Float64Array;
  ids: Int32Array;
  valid: Uint8Array;
}

/**
 * Rows are perturbations of one base row: some peaked (×8), some flat (all equal), some with ties
 * (logits rounded to 0.5) and -Infinity entries (mostly the same ids in all three rows, some in p_ref
 * or p_new only). Ids are drawn from p_inf, so p_inf(x) > 0; about 15% of tokens are padding.
 */
export function randomBatch(rng: Rng, n: number, vocab: number, drift = 0.5): RandomBatch {
  const raw = [
    new Float64Array(n * vocab),
    new Float64Array(n * vocab),
    new Float64Array(n * vocab),
  ];
  for (let t = 0; t < n; t++) {
    const style = rng.int(4); // 0 plain, 1 peaked, 2 flat, 3 ties and -inf
    const base = new Float64Array(vocab).map(() => rng.normal() * (style === 1 ? 8 : 1.5));
    for (let m = 0; m < 3; m++) {
      for (let v = 0; v < vocab; v++) {
        let x = style === 2 ? 0 : base[v] + drift * rng.normal();
        if (style === 3) x = Math.round(x * 2) / 2;
        raw[m][t * vocab + v] = x;
      }
    }
    if (style === 3 && vocab > 2) {
      for (let v = 0; v < vocab; v++) {
        if (rng.uniform() < 0.3) { for (const r of raw) r[t * vocab + v] = -Infinity; }
      }
      // Tokens only p_ref or p_new rule out (p_target(x) = 0 < p_inf(x): a = 0, clamped ratios).
      for (const r of [raw[1], raw[2]]) {
        for (let v = 0; v < vocab; v++) if (rng.uniform() < 0.1) r[t * vocab + v] = -Infinity;
      }
      // Keep at least one finite entry per row.
      for (const r of raw) if (r[t * vocab] === -Infinity) r[t * vocab] = 0;
    }
  }
  const [logpInf, logpRef, logpNew] = raw.map((r) => logSoftmaxRows(r, vocab));
  const ids = new Int32Array(n);
  const valid = new Uint8Array(n);
  for (let t = 0; t < n; t++) {
    let u = rng.uniform();
    let id = 0;
    for (let v = 0; v < vocab; v++) {
      const pv = Math.exp(logpInf[t * vocab + v]);
      if (pv > 0) id = v;
      if (u < pv) break;
      u -= pv;
    }
    ids[t] = id;
    valid[t] = rng.uniform() < 0.85 ? 1 : 0;
  }
  return { vocab, logpInf, logpRef, logpNew, ids, valid };
}
