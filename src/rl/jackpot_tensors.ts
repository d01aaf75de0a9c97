/**
 * Jackpot's mask and weights as tensors of the training step (SPEC §2–4, Algorithm 1 lines 5–9):
 * the OBRS computation of `src/obrs/gpu` (`recordJackpot`) recorded into the tensor runtime's open
 * batch, with no readback, and its outputs handed over as `[B, T]` tensors that `policyLoss` takes
 * as `mask` and `weight`. The batch statistics come back as a `[32]` tensor, read with the step's
 * other statistics (one wait) and decoded by {@link JackpotTensors.decode}.
 *
 * Two choices, and why:
 * - `recordJackpot` takes a `ComputeBatch` and allocates its own GPU buffers. It records into a
 *   staging batch first and its dispatches are replayed into the runtime's batch only once it
 *   returned: an input error thrown half-way leaves nothing recorded that reads a destroyed buffer.
 * - Its outputs are raw GPUBuffers, and a Tensor's storage always comes from the pool (Storage
 *   acquires its own buffer), so a wrap would need a change to src/tensor. They are copied instead
 *   into pooled tensors by the strided-copy kernel, one dispatch each (mask, ρ, w, statistics; the
 *   per-row data and baselines when asked for): 4·N bytes per `[N]` output against the ≥ 2·N·V·4
 *   bytes of logits the Jackpot kernels read, so ~1/V of the traffic. A dispatch, not
 *   `copyBufferToBuffer`: `ComputeBatch` encodes its copies after the pass, after the loss kernels
 *   that read them. The copies give tensors with the usual lifetimes (`tidy`, `dispose`), and the
 *   raw buffers can go as soon as the batch has been submitted.
 *
 * The raw buffers (scratch and outputs) are destroyed by {@link JackpotTensors.release}, which the
 * `stats` tensor calls when it is disposed (directly or by `tidy`): it submits the open batch first
 * (a destroyed buffer would make WebGPU reject the whole batch), so release after the step's
 * readback and nothing extra is submitted. Inside `TensorRuntime.recordInto` (nothing may be
 * submitted there) the buffers wait for the next release or call outside it.
 *
 * Nothing here is differentiable: mask and weights are stop-gradient by definition (SPEC §4).
 *
 * @module
 */
import { ComputeBatch, type Dispatch } from "../gpu/mod.ts";
import {
  decodeStats,
  type JackpotBatch,
  type JackpotParams,
  type JackpotRecording,
  type JackpotStats,
  NonFiniteInputError,
  recordJackpot,
} from "../obrs/gpu/mod.ts";
import {
  contiguousStrides,
  copyInto,
  type DType,
  empty,
  fmtShape,
  launch1d,
  params,
  runtime,
  sameShape,
  sizeOf,
  stridedCopyKernel,
  type Tensor,
} from "../tensor/mod.ts";
import type { RolloutBatch } from "../nn/rollout.ts";

/** Floats in {@link JackpotTensors.stats} (kernels/obrs_batch.wgsl's raw sums). */
export const JACKPOT_STATS_LENGTH = 32;

/** The rollout model's side from its full logits (a trainer-side forward). */
export interface JackpotActorLogits {
  /** p_inf logits `[..., V]`, the shape of the policy's. */
  logits: Tensor;
}

/** The rollout model's side as captured at generation (SPEC §7; `actorFromRollout` builds it). */
export interface JackpotActorTopK {
  /** Captured top-k ids `[..., K]` (i32/u32; distinct within a row). */
  topkIds: Tensor | Int32Array | Uint32Array;
  /** log p_inf at those ids `[..., K]` (f32). */
  topkLogp: Tensor | Float32Array;
  /** log p_inf of the sampled token `[...]`, as recorded at generation (f32). */
  sampledLogp: Tensor | Float32Array;
  /** K, ids captured per token. */
  capturedK: number;
  /**
   * Optional trainer-side p_inf logits `[..., V]`: p_inf on the policy's top-k ids that were not
   * captured (SPEC §3 choice); without them those ids add nothing to Z_approx. Needed for exactZ.
   */
  logits?: Tensor;
}

/** Inputs of {@link jackpotTensors}; `[...]` is the token shape (`[B, T]` or `[N]`). */
export interface JackpotTensorInputs {
  /** p_new logits `[..., V]` (the policy now; read only, never differentiated). */
  policyLogits: Tensor;
  /** p_inf: full logits, or the top-k captured at generation. */
  actor: JackpotActorLogits | JackpotActorTopK;
  /** Sampled token ids `[...]` (i32/u32). */
  tokens: Tensor | Int32Array | Uint32Array;
  /** 1 for real tokens, 0 for padding `[...]` (u32/i32; host u32/u8); default all real. */
  valid?: Tensor | Uint32Array | Uint8Array;
  /** ℓ_ref of the sampled tokens `[...]` (f32): enough for target "new" and the baselines. */
  logpRef?: Tensor | Float32Array;
  /** Full p_ref logits `[..., V]`: required for target "ref" (instead of `logpRef`). */
  refLogits?: Tensor;
}

/** Options of {@link jackpotTensors} beyond `JackpotParams`. */
export interface JackpotTensorOptions {
  /** Also return the per-row data `[..., 8]` (ℓ_inf, ℓ_target, ℓ_ref, ℓ_new, Z_approx, Z, log a, status). */
  rowData?: boolean;
}

/** What {@link jackpotTensors} returns; every tensor stays on the GPU until read. */
export interface JackpotTensors {
  /** M `[...]` u32: 1 accepted; 0 rejected, padding or a flagged row (`policyLoss`'s `mask`). */
  mask: Tensor;
  /** ρ = min(w, c1)·min(p_ref/p_new, c2) `[...]` f32 (`policyLoss`'s `weight`; 0 on padding). */
  rho: Tensor;
  /** w = Z_t·max(λ, p_target/p_inf) `[...]` f32 (not multiplied by M; 0 on padding). */
  w: Tensor;
  /** `[32]` f32 raw sums: read with the step's other statistics, then {@link decode}. */
  stats: Tensor;
  /** `[..., 8]` per-row data when `rowData` was asked for, else null. */
  rowData: Tensor | null;
  /** `[..., 4]` IS, TIS, IcePop weight, IcePop mask when `params.baseline` is set, else null. */
  baseline: Tensor | null;
  /** Whether exact Z was computed (the statistics then carry it). */
  exactZ: boolean;
  /**
   * The statistics from the values read back from {@link stats}. With `onNonFinite: "throw"`
   * (the default) a batch with flagged rows throws `NonFiniteInputError` here, as
   * `jackpotWeights` does at its own readback (the rows' mask and weights are 0 either way).
   */
  decode(raw: ArrayLike<number>): JackpotStats;
  /**
   * Destroys the raw GPU buffers of the computation, submitting the open batch first; idempotent.
   * Disposing {@link stats} calls it.
   */
  release(): void;
}

// A ComputeBatch that only collects: recordJackpot's dispatches are replayed into the runtime's
// batch once it has returned without an error.
class StagingBatch extends ComputeBatch {
  readonly staged: Dispatch[] = [];

  override dispatch(d: Dispatch): this {
    this.staged.push(d);
    return this;
  }

  override copy(): this {
    // A copy would be encoded after the pass, after the kernels reading its destination.
    throw new Error("jackpotTensors: recordJackpot recorded a buffer copy, which cannot be staged");
  }

  override submit(): void {
    throw new Error("jackpotTensors: the staging batch is never submitted");
  }
}

// Recordings whose buffers are not destroyed yet, and those whose release came inside recordInto.
let liveRecordings = 0;
const deferred: JackpotRecording[] = [];

function destroyRecording(rec: JackpotRecording): void {
  rec.releaseScratch();
  rec.destroy();
  liveRecordings--;
}

// Submits the open batch; false inside recordInto, where nothing may be submitted (the runtime's
// flush refuses, naming recordInto; any other error is a real one and propagates).
function trySubmit(): boolean {
  try {
    runtime().flush();
    return true;
  } catch (e) {
    if (e instanceof Error && e.message.startsWith("recordInto:")) return false;
    throw e;
  }
}

function drainDeferred(): void {
  if (deferred.length > 0 && trySubmit()) {
    for (const r of deferred.splice(0)) {
      destroyRecording(r);
    }
  }
}

/**
 * Recordings of {@link jackpotTensors} whose raw GPU buffers are not destroyed yet (a leak check:
 * 0 once every result's `stats` was disposed or `release`d outside `recordInto`).
 */
export function jackpotTensorsLive(): number {
  return liveRecordings;
}

// The GPU buffer of `t` read from byte 0: its own when contiguous at offset 0, else a copy.
function bufferOf(t: Tensor, name: string, dtypes: DType[], temps: Tensor[]): GPUBuffer {
  t.expectDtype(`jackpotTensors: ${name}`, ...dtypes);
  if (t.isContiguous && t.offset === 0) return t.storageBuffer;
  const c = empty(t.shape, t.dtype, "jackpotTensors copy");
  temps.push(c);
  copyInto(t, c, contiguousStrides(t.shape), 0);
  return c.buffer;
}

function checkShape(name: string, t: Tensor, want: readonly number[]): void {
  if (!sameShape(t.shape, want)) {
    throw new RangeError(
      `jackpotTensors: ${name} ${t.describe()} must have shape ${fmtShape(want)}`,
    );
  }
}

// A per-row input: a tensor of shape `shape` (its buffer), or host data of `count` values (passed
// through: recordJackpot uploads it into a buffer of its own, without submitting anything).
function rowInput<H extends Int32Array | Uint32Array | Uint8Array | Float32Array>(
  name: string,
  x: Tensor | H,
  shape: readonly number[],
  dtypes: DType[],
  temps: Tensor[],
): GPUBuffer | H {
  if (ArrayBuffer.isView(x)) {
    if (x.length !== sizeOf(shape)) {
      throw new RangeError(
        `jackpotTensors: ${name} has ${x.length} values, expected ${sizeOf(shape)} ${
          fmtShape(shape)
        }`,
      );
    }
    return x;
  }
  checkShape(name, x, shape);
  return bufferOf(x, name, dtypes, temps);
}

/**
 * Records the Jackpot mask, weights and statistics of one batch into the tensor runtime's open
 * batch (no submit, no readback) and returns them as tensors shaped like the tokens.
 * `params.maxBindingBytes` defaults to the runtime's `storageBindingLimit`, so logits larger than
 * one storage binding are read in row tiles.
 *
 * @example
 * ```ts
 * const jt = jackpotTensors({
 *   policyLogits, // [B, T, V]
 *   actor: actorFromRollout(rollout, actorLogits).actor,
 *   tokens, valid, logpRef,
 * }, { lambda: 1, k: 20, seed: step });
 * const pl = policyLoss({ logpNew, logpRef, advantages, weight: jt.rho, mask: jt.mask });
 * backward(pl.loss);
 * const [raw, plRaw] = await readAll([jt.stats, pl.stats]);
 * console.log(jt.decode(raw).acceptRate);
 * jt.stats.dispose(); // releases the raw buffers
 * ```
 */
export function jackpotTensors(
  x: JackpotTensorInputs,
  p: JackpotParams,
  opts: JackpotTensorOptions = {},
): JackpotTensors {
  const op = "jackpotTensors";
  drainDeferred();
  const rt = runtime();
  const logits = x.policyLogits;
  if (!logits || logits.rank < 2) {
    throw new RangeError(
      `${op}: policyLogits must be [..., V] with at least one token axis, got ${
        logits ? logits.describe() : String(logits)
      }`,
    );
  }
  const lead = logits.shape.slice(0, -1);
  const V = logits.shape[logits.rank - 1];
  const N = sizeOf(lead);
  if (N < 1 || V < 1) throw new RangeError(`${op}: ${logits.describe()} holds no tokens`);
  const temps: Tensor[] = [];
  const logitsOf = (name: string, t: Tensor) => {
    checkShape(name, t, logits.shape);
    return { data: bufferOf(t, name, ["f32"], temps), shape: [N, V] as const };
  };
  let rec: JackpotRecording;
  try {
    const actor = x.actor;
    let inf: JackpotBatch["inf"];
    if ("topkIds" in actor) {
      const K = actor.capturedK;
      if (!Number.isInteger(K) || K < 1) {
        throw new RangeError(`${op}: actor.capturedK must be an integer >= 1, got ${K}`);
      }
      inf = {
        topkIds: rowInput("actor.topkIds", actor.topkIds, [...lead, K], ["i32", "u32"], temps),
        topkLogp: rowInput("actor.topkLogp", actor.topkLogp, [...lead, K], ["f32"], temps),
        sampledLogp: rowInput("actor.sampledLogp", actor.sampledLogp, lead, ["f32"], temps),
        capturedK: K,
        logits: actor.logits ? logitsOf("actor.logits", actor.logits) : undefined,
      };
    } else if (actor?.logits) {
      inf = { logits: logitsOf("actor.logits", actor.logits) };
    } else {
      throw new TypeError(`${op}: actor needs logits, or topkIds/topkLogp/sampledLogp/capturedK`);
    }
    const batch: JackpotBatch = {
      tokens: rowInput("tokens", x.tokens, lead, ["i32", "u32"], temps),
      valid: x.valid === undefined
        ? undefined
        : rowInput("valid", x.valid, lead, ["u32", "i32"], temps),
      inf,
      newLogits: { data: bufferOf(logits, "policyLogits", ["f32"], temps), shape: [N, V] },
      ref: x.refLogits
        ? { logits: logitsOf("refLogits", x.refLogits) }
        : x.logpRef !== undefined
        ? { sampledLogp: rowInput("logpRef", x.logpRef, lead, ["f32"], temps) }
        : undefined,
    };
    const staging = new StagingBatch(rt.gpu);
    rec = recordJackpot(rt.gpu, staging, batch, {
      ...p,
      maxBindingBytes: p.maxBindingBytes ?? rt.storageBindingLimit,
    });
    liveRecordings++;
    for (const d of staging.staged) rt.dispatch(d);
  } finally {
    // Work recorded after this reuses their buffers only later in queue order.
    for (const t of temps) t.dispose();
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    if (trySubmit()) {
      destroyRecording(rec);
      drainDeferred();
    } else deferred.push(rec);
  };
  try {
    const copy = (src: GPUBuffer, shape: readonly number[], dtype: DType) => {
      const t = empty(shape, dtype, op);
      const n = t.size;
      launch1d(
        rt,
        stridedCopyKernel,
        "main",
        [src, t.binding, params([n, 1, 0, 0], [n], [1], [1])],
        n,
      );
      return t;
    };
    const mask = copy(rec.mask, lead, "u32");
    const rho = copy(rec.rho, lead, "f32");
    const w = copy(rec.w, lead, "f32");
    const rowData = opts.rowData ? copy(rec.rowData, [...lead, 8], "f32") : null;
    const baseline = rec.baseline ? copy(rec.baseline, [...lead, 4], "f32") : null;
    const stats = copy(rec.stats, [JACKPOT_STATS_LENGTH], "f32");
    stats.adopt([{ dispose: release }]);
    const exactZ = rec.exactZ;
    const throwOnNonFinite = (p.onNonFinite ?? "throw") === "throw";
    return {
      mask,
      rho,
      w,
      stats,
      rowData,
      baseline,
      exactZ,
      decode(raw: ArrayLike<number>): JackpotStats {
        if (raw.length !== JACKPOT_STATS_LENGTH) {
          throw new RangeError(
            `${op}: decode takes the ${JACKPOT_STATS_LENGTH} values of stats, got ${raw.length}`,
          );
        }
        const s = decodeStats(Float32Array.from(raw), exactZ);
        if (s.nonFinite.count > 0 && throwOnNonFinite) {
          throw new NonFiniteInputError(s.nonFinite.count, s.nonFinite.firstRow!);
        }
        return s;
      },
      release,
    };
  } catch (e) {
    release();
    throw e;
  }
}

/** The per-token inputs of {@link jackpotTensors} taken from a finished rollout batch. */
export interface RolloutJackpotInputs {
  /** Generated ids `[B·maxNew]` (padding past each row's length). */
  tokens: Int32Array;
  /** 1 on generated tokens, 0 past each row's length `[B·maxNew]`. */
  valid: Uint32Array;
  /** The captured top-k, with padded rows made well-formed (distinct ids, log-probs −∞). */
  actor: JackpotActorTopK;
}

/**
 * The tokens, valid mask and captured top-k of `r` (SPEC §7) as {@link jackpotTensors} takes
 * them, rows laid out `[B, maxNew]`. Padding rows repeat the pad id in their captured ids; they
 * are rewritten to ids 0..K−1 at log-prob −∞ (never read: they are not valid) so the input checks
 * pass. `actorLogits` (trainer-side `[B, maxNew, V]`) fills in p_inf on the policy's top-k ids
 * that were not captured: they are the raw model's, so they are refused unless the batch was
 * sampled from the raw model (temperature 1, no top-k/top-p), where captured and trainer-side
 * log-probs are of one distribution (SPEC §10).
 *
 * @example
 * ```ts
 * const r = await engine.generate(prompts, { seed: 1, temperature: 1 });
 * const { tokens, valid, actor } = actorFromRollout(r, actorLogits);
 * ```
 */
export function actorFromRollout(
  r: Pick<
    RolloutBatch,
    | "B"
    | "maxNew"
    | "captureK"
    | "tokens"
    | "logProbs"
    | "topIds"
    | "topLogProbs"
    | "lengths"
    | "settings"
  >,
  actorLogits?: Tensor,
): RolloutJackpotInputs {
  const { B, maxNew: T, captureK: K } = r;
  if (!(K >= 1)) {
    throw new RangeError(
      "actorFromRollout: the batch captured no top-k (RolloutEngine captureK 0); pass the " +
        "actor's logits instead",
    );
  }
  const s = r.settings;
  if (actorLogits && !(s.temperature === 1 && s.topK === 0 && s.topP === 1)) {
    throw new RangeError(
      `actorFromRollout: the batch was sampled with temperature ${s.temperature}, top-k ` +
        `${s.topK}, top-p ${s.topP}; the trainer-side logits are the raw model's and would mix ` +
        `two distributions into p_inf: leave them out, or sample at temperature 1 untruncated`,
    );
  }
  const valid = new Uint32Array(B * T);
  const topkIds = Int32Array.from(r.topIds);
  const topkLogp = Float32Array.from(r.topLogProbs);
  const sampledLogp = Float32Array.from(r.logProbs);
  for (let b = 0; b < B; b++) {
    for (let g = 0; g < T; g++) {
      const o = b * T + g;
      if (g < r.lengths[b]) {
        valid[o] = 1;
        continue;
      }
      sampledLogp[o] = 0;
      for (let j = 0; j < K; j++) {
        topkIds[o * K + j] = j;
        topkLogp[o * K + j] = -Infinity;
      }
    }
  }
  return {
    tokens: Int32Array.from(r.tokens),
    valid,
    actor: { topkIds, topkLogp, sampledLogp, capturedK: K, logits: actorLogits },
  };
}
