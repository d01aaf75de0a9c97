/**
 * OBRS for a batch of N sampled tokens with [N, V] log-probability rows (SPEC §3–4): computes Z_approx
 * (and exact Z) per token, then the per-token quantities of `weights.ts`.
 *
 * Two front ends:
 * - `obrsBatch`: full rows of p_inf, p_ref and p_new (the trainer-side forward of the rollout model).
 * - `obrsBatchTopK`: p_inf known only on its top-k captured at generation, plus the sampled token's
 *   log-prob; p_inf on the policy's top-k ids comes from a full trainer-side row when one is given
 *   (SPEC §3 choice), and those ids are left out of Z_approx when not (still a lower bound on Z, which
 *   κ corrects on average).
 *
 * @module
 */
import { topkIds } from "./topk.ts";
import { checkK, checkLength, checkLogProbRow } from "./validate.ts";
import {
  type ObrsBatchResult,
  obrsTokenWeights,
  type ObrsWeightOptions,
  type TokenLogProbs,
} from "./weights.ts";

/** Options of the batch OBRS functions. */
export interface ObrsOptions extends ObrsWeightOptions {
  /** Size of each top-k set behind Z_approx (SPEC default 20). */
  k: number;
}

/** Full-row batch input: [N, V] row-major log-probabilities and the sampled ids. */
export interface ObrsBatchInput {
  /** V, the vocabulary size (row length). */
  vocab: number;
  /** log p_inf [N, V]. */
  logpInf: Float64Array;
  /** log p_ref [N, V]. */
  logpRef: Float64Array;
  /** log p_new [N, V]. */
  logpNew: Float64Array;
  /** sampled token ids [N]. */
  ids: Int32Array;
  /** 1 for real tokens, 0 for padding [N]; rows of padding are not read. */
  valid: Uint8Array;
}

/** Batch input where p_inf is known on its captured top-k only (plus optionally full rows). */
export interface ObrsTopKInput {
  /** V, the vocabulary size. */
  vocab: number;
  /** K, the number of p_inf entries captured per token at generation (≥ 1). */
  capturedK: number;
  /** log p_ref [N, V]. */
  logpRef: Float64Array;
  /** log p_new [N, V]. */
  logpNew: Float64Array;
  /** sampled token ids [N]. */
  ids: Int32Array;
  /** 1 for real tokens, 0 for padding [N]. */
  valid: Uint8Array;
  /** ids of p_inf's captured top-K [N, K] (any order, no repeats). */
  infTopIds: Int32Array;
  /** log p_inf at those ids [N, K]. */
  infTopLogp: Float64Array;
  /** log p_inf of the sampled token [N], as recorded at generation. */
  infSampledLogp: Float64Array;
  /** optional trainer-side full log p_inf rows [N, V]: fill in p_inf on the policy's top-k, exact Z. */
  logpInfFull?: Float64Array;
}

function checkIds(ids: Int32Array, valid: Uint8Array, vocab: number): void {
  checkLength("ids", ids, valid.length, "[N]");
  for (let t = 0; t < ids.length; t++) {
    if (valid[t] && !(ids[t] >= 0 && ids[t] < vocab)) {
      throw new RangeError(`ids[${t}] = ${ids[t]} is outside [0, V = ${vocab})`);
    }
  }
}

function checkVocab(vocab: number): void {
  if (!Number.isInteger(vocab) || vocab < 1) {
    throw new RangeError(`vocab must be an integer >= 1, got ${vocab}`);
  }
}

/** min(p_inf, p_target/λ) from log-probabilities, with log λ precomputed. */
function minTerm(logInf: number, logTarget: number, logLambda: number): number {
  return Math.min(Math.exp(logInf), Math.exp(logTarget - logLambda));
}

/**
 * OBRS for a batch with full log-probability rows: Z_approx over topk(p_inf) ∪ topk(p_new), exact Z
 * over the whole vocabulary, then mask, κ, Z_t, w and ρ (see `obrsTokenWeights`).
 *
 * @example
 * ```ts
 * const r = obrsBatch({ vocab, logpInf, logpRef, logpNew, ids, valid },
 *   { lambda: 1, k: 20, c1: 3, c2: 3, target: "new", seed: 0 });
 * console.log(r.stats.acceptRate, r.stats.kappa);
 * ```
 */
export function obrsBatch(input: ObrsBatchInput, options: ObrsOptions): ObrsBatchResult {
  const { vocab, logpInf, logpRef, logpNew, ids, valid } = input;
  checkVocab(vocab);
  checkK(options.k, vocab);
  const n = valid.length;
  checkIds(ids, valid, vocab);
  checkLength("logpInf", logpInf, n * vocab, "[N, V]");
  checkLength("logpRef", logpRef, n * vocab, "[N, V]");
  checkLength("logpNew", logpNew, n * vocab, "[N, V]");
  const logpTarget = options.target === "new" ? logpNew : logpRef;
  const logLambda = Math.log(options.lambda);
  const tokens: TokenLogProbs = {
    logpInf: new Float64Array(n),
    logpRef: new Float64Array(n),
    logpNew: new Float64Array(n),
    valid,
  };
  const zApprox = new Float64Array(n);
  const zExact = new Float64Array(n);
  for (let t = 0; t < n; t++) {
    if (!valid[t]) continue;
    checkLogProbRow("logpInf", logpInf, t, vocab);
    checkLogProbRow("logpRef", logpRef, t, vocab);
    checkLogProbRow("logpNew", logpNew, t, vocab);
    const base = t * vocab;
    tokens.logpInf[t] = logpInf[base + ids[t]];
    tokens.logpRef[t] = logpRef[base + ids[t]];
    tokens.logpNew[t] = logpNew[base + ids[t]];
    const rowInf = logpInf.subarray(base, base + vocab);
    const rowNew = logpNew.subarray(base, base + vocab);
    const union = new Set<number>([...topkIds(rowInf, options.k), ...topkIds(rowNew, options.k)]);
    for (const v of union) {
      zApprox[t] += minTerm(logpInf[base + v], logpTarget[base + v], logLambda);
    }
    for (let v = 0; v < vocab; v++) {
      zExact[t] += minTerm(logpInf[base + v], logpTarget[base + v], logLambda);
    }
  }
  return obrsTokenWeights(tokens, zApprox, zExact, options);
}

/**
 * OBRS for a batch where p_inf is known on its captured top-K (and at the sampled token); see the
 * module note for how the policy's top-k ids outside the captured set are handled.
 *
 * @example
 * ```ts
 * const r = obrsBatchTopK({ vocab, capturedK: 20, logpRef, logpNew, ids, valid, infTopIds,
 *   infTopLogp, infSampledLogp }, { lambda: 1, k: 20, c1: 3, c2: 3, target: "new", seed: 0 });
 * ```
 */
export function obrsBatchTopK(input: ObrsTopKInput, options: ObrsOptions): ObrsBatchResult {
  const { vocab, capturedK, logpRef, logpNew, ids, valid, infTopIds, infTopLogp, logpInfFull } =
    input;
  checkVocab(vocab);
  checkK(options.k, vocab);
  if (!Number.isInteger(capturedK) || capturedK < 1 || capturedK > vocab) {
    throw new RangeError(`capturedK must be an integer in [1, V = ${vocab}], got ${capturedK}`);
  }
  const n = valid.length;
  checkIds(ids, valid, vocab);
  checkLength("logpRef", logpRef, n * vocab, "[N, V]");
  checkLength("logpNew", logpNew, n * vocab, "[N, V]");
  checkLength("infTopIds", infTopIds, n * capturedK, "[N, K]");
  checkLength("infTopLogp", infTopLogp, n * capturedK, "[N, K]");
  checkLength("infSampledLogp", input.infSampledLogp, n, "[N]");
  if (logpInfFull) checkLength("logpInfFull", logpInfFull, n * vocab, "[N, V]");
  const logpTarget = options.target === "new" ? logpNew : logpRef;
  const logLambda = Math.log(options.lambda);
  const tokens: TokenLogProbs = {
    logpInf: new Float64Array(n),
    logpRef: new Float64Array(n),
    logpNew: new Float64Array(n),
    valid,
  };
  const zApprox = new Float64Array(n);
  const zExact = logpInfFull ? new Float64Array(n) : null;
  for (let t = 0; t < n; t++) {
    if (!valid[t]) continue;
    checkLogProbRow("logpRef", logpRef, t, vocab);
    checkLogProbRow("logpNew", logpNew, t, vocab);
    if (logpInfFull) checkLogProbRow("logpInfFull", logpInfFull, t, vocab);
    const base = t * vocab;
    tokens.logpInf[t] = input.infSampledLogp[t];
    tokens.logpRef[t] = logpRef[base + ids[t]];
    tokens.logpNew[t] = logpNew[base + ids[t]];
    // p_inf where it is known: the captured entries first, then (given full rows) the rest.
    const knownInf = new Map<number, number>();
    for (let j = 0; j < capturedK; j++) {
      const id = infTopIds[t * capturedK + j];
      const lp = infTopLogp[t * capturedK + j];
      if (!(id >= 0 && id < vocab)) {
        throw new RangeError(`infTopIds[${t}, ${j}] = ${id} is outside [0, V)`);
      }
      if (knownInf.has(id)) throw new RangeError(`infTopIds row ${t} repeats id ${id}`);
      if (Number.isNaN(lp) || lp > 0) {
        throw new RangeError(`infTopLogp[${t}, ${j}] = ${lp} is not a log-probability`);
      }
      knownInf.set(id, lp);
    }
    const unionIds = new Set<number>(knownInf.keys());
    for (const v of topkIds(logpNew.subarray(base, base + vocab), options.k)) {
      if (knownInf.has(v)) continue;
      if (logpInfFull) {
        knownInf.set(v, logpInfFull[base + v]);
        unionIds.add(v);
      }
    }
    for (const v of unionIds) {
      zApprox[t] += minTerm(knownInf.get(v)!, logpTarget[base + v], logLambda);
    }
    if (zExact && logpInfFull) {
      for (let v = 0; v < vocab; v++) {
        zExact[t] += minTerm(logpInfFull[base + v], logpTarget[base + v], logLambda);
      }
    }
  }
  return obrsTokenWeights(tokens, zApprox, zExact, options);
}
