/**
 * `jackpotWeights`: the whole OBRS / Jackpot weight computation of one batch on the GPU (SPEC
 * §2–4, §8) recorded into one compute pass, with one readback (the statistics) at the end. The
 * mask and the weights stay on the GPU for the trainer.
 *
 * Dispatch order: per model a fused row pass (lse, top-k, sampled log-prob, flags) → gathers of
 * log-probs at the other model's top-k ids → (exact Z) → per-row Z_approx, acceptance and mask →
 * one workgroup for κ, weights, baselines and statistics.
 *
 * @module
 */
import type { GpuContext } from "../../gpu/device.ts";
import { ComputeBatch } from "../../gpu/batch.ts";
import { createStorageBuffer, readBuffers } from "../../gpu/buffers.ts";
import {
  recordGather,
  recordObrsBatch,
  recordObrsRow,
  recordPackSampled,
  recordRowTopk,
  recordZExact,
} from "./ops.ts";
import {
  type ActorFromTopK,
  checkDistinctIds,
  checkIds,
  checkLogits,
  checkLogProbValues,
  checkRowValues,
  checkType,
  checkValid,
  type JackpotBatch,
  type JackpotParams,
  type Logits,
  logitsToGpu,
  NonFiniteInputError,
  resolveParams,
  toGpu,
} from "./inputs.ts";

/** Batch statistics (SPEC §8), named as in the float64 reference's `ObrsBatchStats`. */
export interface JackpotStats {
  /** Valid (unpadded, unflagged) tokens. */
  validCount: number;
  /** Accepted tokens (M = 1). */
  acceptedCount: number;
  /** ᾱ = accepted / valid (0 when none). */
  acceptRate: number;
  /** Mean acceptance probability a over valid tokens (E[ᾱ]). */
  expectedAcceptRate: number;
  /** κ = ᾱ / mean Z_approx (0 when mean Z_approx is 0). */
  kappa: number;
  /** Mean Z_approx over valid tokens. */
  meanZApprox: number;
  /** Mean exact Z over valid tokens; null unless `exactZ`. */
  meanZExact: number | null;
  /** Mean of Z_approx / Z per token (0/0 counts 1); null unless `exactZ`. */
  zApproxOverZ: number | null;
  /** Mean over valid tokens of KL(p_inf ‖ p_target) over the whole vocabulary; null unless `exactZ`. */
  klInfTarget: number | null;
  /** Mean over valid tokens of KL(p_target ‖ p_inf) over the whole vocabulary; null unless `exactZ`. */
  klTargetInf: number | null;
  /** Mean w over accepted tokens. */
  weightMean: number;
  /** Max w over accepted tokens. */
  weightMax: number;
  /** Mean ρ over accepted tokens. */
  rhoMean: number;
  /** Max ρ over accepted tokens. */
  rhoMax: number;
  /** Fraction of accepted tokens with w > c1. */
  clipFractionC1: number;
  /** Fraction of accepted tokens with p_ref/p_new > c2 (0 for target "ref"). */
  clipFractionC2: number;
  /** Fraction of accepted tokens where either clip binds. */
  clippedFraction: number;
  /** (Σw)² / Σw² over accepted tokens. */
  ess: number;
  /** mean(ℓ_inf − ℓ_new) at the sampled tokens. */
  k1: number;
  /** mean(r − 1 − log r), r = p_new / p_inf at the sampled tokens. */
  k3: number;
  /** mean and max of |ℓ_new − ℓ_inf| at the sampled tokens. */
  absLogRatioMean: number;
  /** max |ℓ_new − ℓ_inf|. */
  absLogRatioMax: number;
  /**
   * Valid rows left out because an input held NaN/+Inf, was all -Inf, had an id ≥ V, repeated an
   * id in the captured top-k, or had a captured log-prob above 0.
   */
  nonFinite: { count: number; firstRow: number | null };
}

/** What {@link jackpotWeights} leaves on the GPU, plus the statistics. */
export interface JackpotResult {
  /** Rows N. */
  rows: number;
  /** `[N]` u32: 1 accepted, 0 rejected, padded or flagged. */
  mask: GPUBuffer;
  /** `[N]` f32: w = Z_t max(λ, p_target/p_inf) (0 on padded/flagged rows; not multiplied by M). */
  w: GPUBuffer;
  /** `[N]` f32: ρ = min(w, c1) min(p_ref/p_new, c2) (0 on padded/flagged rows). */
  rho: GPUBuffer;
  /** `[N, 4]` f32: IS, TIS, IcePop weight, IcePop mask; present with `baseline`. */
  baseline?: GPUBuffer;
  /**
   * `[N, 8]` f32 per row: ℓ_inf, ℓ_target, ℓ_ref, ℓ_new (sampled token), Z_approx, exact Z,
   * log a, status (flags | 256 for padding).
   */
  rowData: GPUBuffer;
  /** Batch statistics (the one readback). */
  stats: JackpotStats;
  /** Frees every buffer above. */
  destroy(): void;
}

const INFO_COLS = 4;

function isTopK(inf: JackpotBatch["inf"]): inf is ActorFromTopK {
  return "topkIds" in inf;
}

/**
 * Computes the Jackpot mask and weights of one batch on the GPU.
 *
 * @example
 * ```ts
 * const gpu = await getGpu();
 * const r = await jackpotWeights(gpu, {
 *   tokens, inf: { logits: { data: infLogits, shape: [n, v] } },
 *   newLogits: { data: newLogits, shape: [n, v] }, ref: { sampledLogp: refLogp },
 * }, { lambda: 1, k: 20, seed: 7 });
 * console.log(r.stats.acceptRate, r.stats.kappa); // r.mask, r.rho stay on the GPU
 * r.destroy();
 * ```
 */
export async function jackpotWeights(
  gpu: GpuContext,
  batch: JackpotBatch,
  params: JackpotParams,
): Promise<JackpotResult> {
  const cb = new ComputeBatch(gpu);
  const rec = recordJackpot(gpu, cb, batch, params);
  // A destroyed or otherwise unusable input buffer makes WebGPU drop the work and report a
  // validation error asynchronously; without this scope the caller would get all-zero weights.
  gpu.device.pushErrorScope("validation");
  let scoped = true;
  try {
    cb.submit();
    const [raw] = await readBuffers(gpu, [{ buffer: rec.stats }]);
    const gpuError = await gpu.device.popErrorScope();
    scoped = false;
    if (gpuError) throw new Error(`WebGPU rejected the batch: ${gpuError.message}`);
    const stats = decodeStats(new Float32Array(raw), rec.exactZ);
    rec.releaseScratch();
    if (stats.nonFinite.count > 0 && (params.onNonFinite ?? "throw") === "throw") {
      throw new NonFiniteInputError(stats.nonFinite.count, stats.nonFinite.firstRow!);
    }
    const { rows, mask, w, rho, baseline, rowData, destroy } = rec;
    return { rows, mask, w, rho, baseline, rowData, stats, destroy };
  } catch (e) {
    if (scoped) await gpu.device.popErrorScope();
    rec.releaseScratch();
    rec.destroy();
    throw e;
  }
}

/** What {@link recordJackpot} recorded: output buffers, the raw statistics buffer, cleanup. */
export interface JackpotRecording extends Omit<JackpotResult, "stats"> {
  /** `[32]` f32 raw sums; {@link decodeStats} turns them into {@link JackpotStats}. */
  stats: GPUBuffer;
  /** Whether exact Z was computed (for {@link decodeStats}). */
  exactZ: boolean;
  /** Frees the scratch buffers (uploads, top-k, gathers); call once the batch has been submitted. */
  releaseScratch(): void;
}

/**
 * Records the whole computation into `cb` without submitting or reading anything: for a trainer
 * that records its step into one batch, and for benchmarks. Input checks run here, eagerly.
 *
 * @example
 * ```ts
 * const cb = new ComputeBatch(gpu);
 * const rec = recordJackpot(gpu, cb, batch, { seed: 1 });
 * cb.submit();
 * rec.releaseScratch(); // rec.mask / rec.rho stay valid until rec.destroy()
 * ```
 */
export function recordJackpot(
  gpu: GpuContext,
  cb: ComputeBatch,
  batch: JackpotBatch,
  params: JackpotParams,
): JackpotRecording {
  const [rows, vocab] = batch.newLogits.shape;
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(vocab) || vocab < 1) {
    throw new RangeError(`p_new logits shape must be [N >= 1, V >= 1], got [${rows}, ${vocab}]`);
  }
  const p = resolveParams(params, vocab);
  checkLogits("p_new", batch.newLogits, rows, vocab);
  checkType("tokens", batch.tokens, [Uint32Array, Int32Array]);
  checkRowValues("tokens", batch.tokens, rows, "[N]");
  checkIds("tokens", batch.tokens, vocab);
  if (batch.valid) {
    checkType("valid", batch.valid, [Uint32Array, Uint8Array]);
    checkRowValues("valid", batch.valid, rows, "[N]");
    checkValid(batch.valid);
  }
  const inf = batch.inf;
  const infFull: Logits | undefined = inf.logits;
  if (infFull) checkLogits("p_inf", infFull, rows, vocab);
  let ki = p.k;
  if (isTopK(inf)) {
    ki = inf.capturedK;
    if (!Number.isInteger(ki) || ki < 1 || ki > vocab) {
      throw new RangeError(`capturedK must be an integer in [1, V = ${vocab}], got ${ki}`);
    }
    checkType("inf.topkIds", inf.topkIds, [Uint32Array, Int32Array]);
    checkType("inf.topkLogp", inf.topkLogp, [Float32Array]);
    checkType("inf.sampledLogp", inf.sampledLogp, [Float32Array]);
    checkRowValues("inf.topkIds", inf.topkIds, rows * ki, "[N, capturedK]");
    checkRowValues("inf.topkLogp", inf.topkLogp, rows * ki, "[N, capturedK]");
    checkRowValues("inf.sampledLogp", inf.sampledLogp, rows, "[N]");
    checkIds("inf.topkIds", inf.topkIds, vocab);
  }
  const ref = batch.ref;
  const refLogits = ref && "logits" in ref ? ref.logits : undefined;
  if (refLogits) checkLogits("p_ref", refLogits, rows, vocab);
  if (ref && "sampledLogp" in ref) {
    checkType("ref.sampledLogp", ref.sampledLogp, [Float32Array]);
    checkRowValues("ref.sampledLogp", ref.sampledLogp, rows, "[N]");
    checkLogProbValues("ref.sampledLogp", ref.sampledLogp);
  }
  if (p.target === "ref" && !refLogits) {
    throw new RangeError('target "ref" needs p_ref logits (ref: { logits }) for Z over the top-k');
  }
  if (p.target === "new" && !ref) {
    throw new RangeError('target "new" needs p_ref (logits or sampledLogp) for ρ\'s p_ref/p_new');
  }
  if (p.baseline && !ref) {
    throw new RangeError("baseline weights need p_ref (logits or sampledLogp)");
  }
  if (p.exactZ && !infFull) {
    throw new RangeError("exactZ needs the full logits of the rollout model (inf.logits)");
  }
  // Scans of the host data last, once the configuration is known to be consistent.
  if (isTopK(inf)) {
    checkDistinctIds("inf.topkIds", inf.topkIds, ki);
    checkLogProbValues("inf.topkLogp", inf.topkLogp);
    checkLogProbValues("inf.sampledLogp", inf.sampledLogp);
  }

  const temps: GPUBuffer[] = [];
  const outputs: GPUBuffer[] = [];
  const buf = (bytes: number, label: string, keep = false) => {
    const b = createStorageBuffer(gpu, bytes, label);
    (keep ? outputs : temps).push(b);
    return b;
  };
  try {
    const n = rows;
    const kn = p.k;
    const tokens = toGpu(gpu, batch.tokens, "tokens", temps);
    const valid = batch.valid ? toGpu(gpu, batch.valid, "valid", temps) : undefined;
    const newData = logitsToGpu(gpu, batch.newLogits.data, "p_new logits", temps);
    const infData = infFull ? logitsToGpu(gpu, infFull.data, "p_inf logits", temps) : undefined;
    const refData = refLogits ? logitsToGpu(gpu, refLogits.data, "p_ref logits", temps) : undefined;
    // info regions: 0 p_inf (sampled as used), 1 p_new, 2 p_ref, 3 trainer-side p_inf rows.
    const info = buf(4 * n * INFO_COLS * 4, "info");
    const newVals = buf(n * kn * 4, "p_new top-k");
    const newIds = buf(n * kn * 4, "p_new top-k ids");
    const common = {
      rows: n,
      vocab,
      info,
      maxBindingBytes: p.maxBindingBytes,
      tokens,
      vec4: p.topkVec4,
      segments: p.topkSegments,
      groups: p.topkGroups,
      uniformCount: p.topkUniformCount,
    };
    const method = p.topkMethod;
    temps.push(...recordRowTopk(gpu, cb, {
      ...common,
      logits: newData,
      k: kn,
      vals: newVals,
      ids: newIds,
      infoRow0: n,
      method,
    }));

    let infIds: GPUBuffer, infVals: GPUBuffer;
    let infRegion = 0; // region whose max and log Σ belong to infData
    if (isTopK(inf)) {
      infIds = toGpu(gpu, inf.topkIds, "p_inf captured ids", temps);
      infVals = toGpu(gpu, inf.topkLogp, "p_inf captured log-probs", temps);
      const sampled = toGpu(gpu, inf.sampledLogp, "p_inf sampled", temps);
      recordPackSampled(gpu, cb, {
        sampled,
        rows: n,
        vocab,
        info,
        infoRow0: 0,
        ids: infIds,
        vals: infVals,
        kk: ki,
      });
      if (infData) {
        infRegion = 3;
        const v1 = buf(n * 4, "p_inf k1"), i1 = buf(n * 4, "p_inf k1 ids");
        temps.push(...recordRowTopk(gpu, cb, {
          ...common,
          logits: infData,
          k: 1,
          vals: v1,
          ids: i1,
          infoRow0: 3 * n,
        }));
      }
    } else {
      infVals = buf(n * ki * 4, "p_inf top-k");
      infIds = buf(n * ki * 4, "p_inf top-k ids");
      temps.push(...recordRowTopk(gpu, cb, {
        ...common,
        logits: infData!,
        k: ki,
        vals: infVals,
        ids: infIds,
        infoRow0: 0,
        method,
      }));
    }
    if (refData) {
      const v1 = buf(n * 4, "p_ref k1"), i1 = buf(n * 4, "p_ref k1 ids");
      temps.push(...recordRowTopk(gpu, cb, {
        ...common,
        logits: refData,
        k: 1,
        vals: v1,
        ids: i1,
        infoRow0: 2 * n,
      }));
    } else if (ref && "sampledLogp" in ref) {
      const sampled = toGpu(gpu, ref.sampledLogp, "p_ref sampled", temps);
      recordPackSampled(gpu, cb, { sampled, rows: n, vocab, info, infoRow0: 2 * n });
    }

    // Log-probs at the union's ids: target at both top-k sets, p_inf at p_new's top-k.
    const offsets = { tgtAtInf: 0, tgtAtNew: n * ki, infAtNew: n * ki + n * kn };
    const gath = buf((n * ki + 2 * n * kn) * 4, "gathered log-probs");
    const tgtData = p.target === "new" ? newData : refData!;
    const tgtRegion = p.target === "new" ? 1 : 2;
    const g = { rows: n, vocab, info, out: gath, maxBindingBytes: p.maxBindingBytes };
    recordGather(gpu, cb, {
      ...g,
      logits: tgtData,
      ids: infIds,
      kk: ki,
      infoRow0: tgtRegion * n,
      outOffset: offsets.tgtAtInf,
    });
    recordGather(gpu, cb, {
      ...g,
      logits: tgtData,
      ids: newIds,
      kk: kn,
      infoRow0: tgtRegion * n,
      outOffset: offsets.tgtAtNew,
    });
    if (infData) {
      recordGather(gpu, cb, {
        ...g,
        logits: infData,
        ids: newIds,
        kk: kn,
        infoRow0: infRegion * n,
        outOffset: offsets.infAtNew,
      });
    }

    const rowData = buf(n * 8 * 4, "obrs row data", true);
    const mask = buf(n * 4, "obrs mask", true);
    const kl = p.exactZ ? buf(n * 8, "full-vocabulary KL") : undefined;
    if (kl) {
      recordZExact(gpu, cb, {
        infLogits: infData!,
        tgtLogits: tgtData,
        rows: n,
        vocab,
        target: p.target,
        lambda: p.lambda,
        info,
        infRegion,
        rowData,
        kl,
        maxBindingBytes: p.maxBindingBytes,
      });
    }
    recordObrsRow(gpu, cb, {
      rows: n,
      ki,
      kn,
      seed: p.seed,
      lambda: p.lambda,
      target: p.target,
      hasRef: ref !== undefined,
      hasInfAtNew: infData !== undefined,
      infIds,
      infVals,
      newIds,
      gath,
      offsets,
      info,
      valid,
      rowData,
      mask,
    });
    const w = buf(n * 4, "obrs w", true);
    const rho = buf(n * 4, "obrs rho", true);
    const baselineOut = p.baseline ? buf(n * 16, "baseline weights", true) : undefined;
    const statsBuf = buf(32 * 4, "obrs stats", true);
    recordObrsBatch(gpu, cb, {
      rows: n,
      lambda: p.lambda,
      c1: p.c1,
      c2: p.c2,
      target: p.target,
      baseline: p.baseline,
      rowData,
      mask,
      w,
      rho,
      baselineOut,
      stats: statsBuf,
      kl,
    });
    return {
      rows: n,
      mask,
      w,
      rho,
      baseline: baselineOut,
      rowData,
      stats: statsBuf,
      exactZ: p.exactZ,
      releaseScratch: () => {
        for (const b of temps) b.destroy();
        temps.length = 0;
      },
      destroy: () => outputs.forEach((b) => b.destroy()),
    };
  } catch (e) {
    for (const b of [...temps, ...outputs]) b.destroy();
    throw e;
  }
}

/** Turns the raw sums of kernels/obrs_batch.wgsl into the statistics. */
export function decodeStats(s: Float32Array, exactZ: boolean): JackpotStats {
  const valid = s[0], accepted = s[1];
  const perValid = (x: number) => (valid > 0 ? x / valid : 0);
  const perAccepted = (x: number) => (accepted > 0 ? x / accepted : 0);
  return {
    validCount: valid,
    acceptedCount: accepted,
    acceptRate: perValid(accepted),
    expectedAcceptRate: perValid(s[2]),
    kappa: s[22],
    meanZApprox: perValid(s[3]),
    meanZExact: exactZ ? perValid(s[4]) : null,
    zApproxOverZ: exactZ ? (valid > 0 ? s[11] / valid : 1) : null,
    klInfTarget: exactZ ? perValid(s[12]) : null,
    klTargetInf: exactZ ? perValid(s[13]) : null,
    k1: perValid(s[5]),
    k3: perValid(s[6]),
    absLogRatioMean: perValid(s[9]),
    absLogRatioMax: s[10],
    weightMean: perAccepted(s[14]),
    weightMax: s[16],
    rhoMean: perAccepted(s[17]),
    rhoMax: s[21],
    clipFractionC1: perAccepted(s[18]),
    clipFractionC2: perAccepted(s[19]),
    clippedFraction: perAccepted(s[20]),
    ess: s[15] > 0 ? (s[14] * s[14]) / s[15] : 0,
    nonFinite: { count: s[7], firstRow: s[7] > 0 ? s[8] : null },
  };
}
