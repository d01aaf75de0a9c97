/**
 * The rollout engine: batched sampling on the GPU with a preallocated KV cache and one readback
 * per batch.
 *
 * Every row moves through the same positions. The positions that every prompt covers (all but
 * the shortest prompt's last token) are prefilled by one batched training-mode forward; from there,
 * at step s the model reads each row's token at position s (the prompt's while it lasts, then the
 * row's own last sample) and kernels/sample_row.wgsl either feeds the next prompt token or
 * samples. A row whose prompt has n tokens samples its g-th token at step n - 1 + g, so short
 * prompts start generating early and no padding ever enters attention; positions and causal masks are exactly those of a training
 * forward over the finished sequence, which is what makes the captured log-probs replayable
 * (tests/nn_rollout_test.ts checks the two against each other). Rows finish on their own (stop
 * token or budget) and are fed padding afterwards. The host records `steps` decode steps and reads
 * the outputs once at the end; it never waits per token.
 *
 * Recorded per generated token (SPEC §7, §10): the token, its log-prob under the processed
 * sampling distribution and under the raw model, and the top-k (ids, processed log-probs); per
 * batch: the sampling settings, seed and stream, so the behaviour policy is known exactly.
 *
 * @module
 */
import { noGrad, ops } from "../autograd/mod.ts";
import { ComputeBatch } from "../gpu/mod.ts";
import { readAll, runtime, tensor, tidy } from "../tensor/mod.ts";
import { decodeStep, KVCache, prefill } from "./kv_cache.ts";
import {
  allocSampleBuffers,
  disposeSampleBuffers,
  MAX_STOP_IDS,
  recordSampleStep,
  resetSampleState,
  type SampleBuffers,
  type SampleOutputs,
  unpackSampleOutputs,
} from "./sample_step.ts";
import { DEFAULT_SAMPLING, type SamplingSettings, validateSampling } from "./sampling_reference.ts";
import type { Transformer } from "./transformer.ts";

/** Sizes an engine is built for (its buffers are allocated once). */
export interface RolloutEngineOptions {
  /** Most rows per batch. */
  maxBatch: number;
  /** Longest prompt. */
  maxPromptLength: number;
  /** Tokens generated per row at most (the stop token included). */
  maxNewTokens: number;
  /** Top-k (ids, log-probs) captured per token; default 0. */
  captureK?: number;
}

/** Per-batch options of {@link RolloutEngine.generate}. */
export interface GenerateOptions extends Partial<SamplingSettings> {
  /** RNG seed (u32). */
  seed: number;
  /** RNG stream of the first row (rows use consecutive streams); default 0. */
  stream0?: number;
  /**
   * Stop token (a row finishes after sampling it); default none (-1, as a batch records it). A
   * list of up to {@link MAX_STOP_IDS} ids stops on any of them (as a Hugging Face
   * `generation_config.json` lists several `eos_token_id`s).
   */
  stopId?: number | readonly number[];
  /** Token fed to finished rows and written past each row's end; default 0. */
  padId?: number;
  /** Which weights produced the batch (e.g. the optimizer step); recorded as given (SPEC §10). */
  modelVersion?: string | number;
  /**
   * Called as the GPU finishes decode steps (`done` of `total`, about 50 times a batch, and once
   * with `done === total`): a progress bar for long batches on slow adapters. The host waits for
   * `queue.onSubmittedWorkDone()` one report behind the steps it records, so the GPU keeps work
   * queued; no readback.
   */
  onProgress?: (done: number, total: number) => void;
}

/** A finished batch of rollouts, everything on the host. */
export interface RolloutBatch extends SampleOutputs {
  /** Rows. */
  B: number;
  /** Columns of the `[B, maxNew]` arrays. */
  maxNew: number;
  /** Captured top-k width. */
  captureK: number;
  /** The prompts, as given. */
  prompts: Int32Array[];
  /** The sampling settings used. */
  settings: SamplingSettings;
  /** Seed and first stream of the draws. */
  seed: number;
  /** Stream of row 0. */
  stream0: number;
  /** The first stop token (or -1 when none). */
  stopId: number;
  /** Every stop token (empty when none). */
  stopIds: number[];
  /** Decode steps run (after the prefill of the positions every prompt covers). */
  steps: number;
  /** `GenerateOptions.modelVersion`, or null. */
  modelVersion: string | number | null;
}

/**
 * Batched sampling with a preallocated KV cache.
 *
 * @example
 * ```ts
 * const engine = new RolloutEngine(model, { maxBatch: 64, maxPromptLength: 8, maxNewTokens: 16, captureK: 8 });
 * const r = await engine.generate(prompts, { seed: 1, temperature: 1, stopId: tok.eosId });
 * r.tokens; r.logProbs; r.rawLogProbs; r.topIds; r.topLogProbs; r.lengths;
 * engine.dispose();
 * ```
 */
export class RolloutEngine {
  /** The model sampled from (its weights may change between batches). */
  readonly model: Transformer;
  /** The sizes. */
  readonly options: Required<RolloutEngineOptions>;
  /** The KV cache. */
  readonly cache: KVCache;
  #buffers: SampleBuffers;

  /** Allocates the cache and the sampling buffers. */
  constructor(model: Transformer, options: RolloutEngineOptions) {
    const o = { captureK: 0, ...options };
    for (const k of ["maxBatch", "maxPromptLength", "maxNewTokens"] as const) {
      if (!Number.isInteger(o[k]) || o[k] < 1) {
        throw new RangeError(`rollout: ${k} must be a positive integer, got ${o[k]}`);
      }
    }
    const positions = o.maxPromptLength + o.maxNewTokens - 1;
    if (positions > model.config.maxSeqLen) {
      throw new RangeError(
        `rollout: prompts of ${o.maxPromptLength} plus ${o.maxNewTokens} new tokens need ${positions} positions, ` +
          `the model has maxSeqLen ${model.config.maxSeqLen}`,
      );
    }
    if (o.captureK > model.config.vocabSize) {
      throw new RangeError(
        `rollout: captureK ${o.captureK} exceeds the vocabulary ${model.config.vocabSize}`,
      );
    }
    this.model = model;
    this.options = o;
    this.cache = new KVCache(model, o.maxBatch, positions);
    this.#buffers = allocSampleBuffers(o.maxBatch, o.maxNewTokens, o.captureK);
  }

  /**
   * Samples up to `maxNewTokens` tokens after each prompt. Records every step into the open GPU
   * batch and reads the outputs back once.
   */
  async generate(
    prompts: readonly ArrayLike<number>[],
    opts: GenerateOptions,
  ): Promise<RolloutBatch> {
    const o = this.options;
    const B = prompts.length;
    const V = this.model.config.vocabSize;
    if (B < 1 || B > o.maxBatch) {
      throw new RangeError(`rollout: batch of ${B} prompts, the engine holds 1..${o.maxBatch}`);
    }
    const settings = validateSampling({ ...DEFAULT_SAMPLING, ...stripUndefined(opts) }, V);
    // The kernel reads these as u32: anything else would wrap silently (a stop token outside the
    // vocabulary never stops a row; a pad outside it is fed to the model).
    const padId = checkId("padId", opts.padId ?? 0, V);
    // -1 is "none", as RolloutBatch.stopId records it, so a batch's settings can be passed back.
    const stopIds = stopTokens(opts.stopId, V);
    const seed = checkU32("seed", opts.seed);
    const stream0 = checkU32("stream0", opts.stream0 ?? 0);
    if (stream0 + B - 1 > 0xffffffff) {
      throw new RangeError(
        `rollout: stream0 ${stream0} + ${B} rows passes 2^32 (row streams would wrap onto earlier ones)`,
      );
    }
    const lengths = Int32Array.from(prompts, (p) => p.length);
    const cols = Math.max(...lengths);
    if (Math.min(...lengths) < 1) {
      throw new RangeError("rollout: every prompt needs at least one token");
    }
    if (cols > o.maxPromptLength) {
      throw new RangeError(
        `rollout: a prompt has ${cols} tokens, the engine was built for ${o.maxPromptLength}`,
      );
    }
    const block = new Int32Array(B + B * cols).fill(padId);
    block.set(lengths);
    prompts.forEach((p, b) => {
      for (let t = 0; t < p.length; t++) {
        if (!Number.isInteger(p[t]) || p[t] < 0 || p[t] >= V) {
          throw new RangeError(`rollout: prompt ${b} has token ${p[t]} at ${t}, outside [0, ${V})`);
        }
        block[B + b * cols + t] = p[t];
      }
    });
    const buffers = this.#buffers;
    // The positions every prompt covers are prefilled by one batched forward; decoding starts at
    // the shortest prompt's last token (longer prompts are teacher-forced from there).
    const s0 = Math.min(...lengths) - 1;
    const prefix = s0 > 0
      ? tensor(Int32Array.from({ length: B * s0 }, (_, i) => prompts[Math.floor(i / s0)][i % s0]), [
        B,
        s0,
      ])
      : null;
    const prompt = tensor(block);
    resetSampleState(buffers, Int32Array.from(prompts, (p) => p[s0]));
    const steps = cols + o.maxNewTokens - 1;
    // One pass and one submit per step, never a wait: every op of the step records into `batch`
    // (the OBRS top-k pass takes its batch as an argument). Buffers a step releases are reused
    // only by later steps, which run later in queue order.
    const rt = runtime();
    rt.flush();
    // A validation error (a kernel whose bindings drifted) would otherwise only be logged by the
    // device while the outputs stay zero: catch it and fail the batch.
    rt.gpu.device.pushErrorScope("validation");
    let outputs: Awaited<ReturnType<typeof readAll>>;
    let gpuError: GPUError | null;
    try {
      noGrad(() => {
        // Through the runtime's own batch: the causal mask may need an upload, which flushes.
        if (prefix) tidy(() => prefill(this.model, prefix, this.cache));
        rt.flush();
      });
      const total = steps - s0;
      const every = Math.max(1, Math.floor(total / 50));
      const report = opts.onProgress;
      // With a progress report, the host waits every `every` steps for the GPU to finish the steps
      // up to the previous report: a device's work-done promises resolve only while the host waits
      // on the device (on llvmpipe, all at the final readback otherwise), and waiting one report
      // behind keeps `every` steps queued, so the GPU never idles for it.
      let pending: { done: number; promise: Promise<void> } | null = null;
      for (let s = s0; s < steps; s++) {
        noGrad(() => {
          const batch = new ComputeBatch(rt.gpu);
          const temps = rt.recordInto(batch, () =>
            tidy(() => {
              const input = ops.slice(buffers.nextTokens, 0, 0, B);
              const logits = decodeStep(this.model, input, this.cache, s);
              return recordSampleStep(batch, {
                logits,
                buffers,
                prompt,
                promptCols: cols,
                step: s,
                settings,
                seed,
                stream0,
                stopIds,
                padId,
              });
            }));
          batch.submit();
          for (const t of temps) t.destroy();
        });
        const done = s - s0 + 1;
        if (report && (done % every === 0 || done === total)) {
          if (pending) {
            await pending.promise;
            report(pending.done, total);
          }
          pending = { done, promise: rt.gpu.device.queue.onSubmittedWorkDone() };
        }
      }
      if (pending && report) {
        await pending.promise;
        report(pending.done, total);
      }
      outputs = await readAll([buffers.state, buffers.outMain, buffers.outTop]);
    } finally {
      // Whatever happened, pop the scope (a leaked one would swallow later validation errors) and
      // free the batch's own tensors.
      gpuError = await rt.gpu.device.popErrorScope();
      prompt.dispose();
      prefix?.dispose();
    }
    const [state, main, top] = outputs;
    if (gpuError) throw new Error(`rollout: the GPU rejected a sampling step: ${gpuError.message}`);
    const out = unpackSampleOutputs(
      buffers,
      B,
      state as Uint32Array,
      main as Uint32Array,
      top as Uint32Array,
      padId,
    );
    const bad = out.flags.findIndex((f) => f !== 0);
    if (bad >= 0) {
      throw new Error(
        `rollout: row ${bad} met ${
          out.flags[bad] & 1 ? "NaN or +Inf" : "all -Inf"
        } logits; the model's weights are not finite`,
      );
    }
    return {
      ...out,
      B,
      maxNew: o.maxNewTokens,
      captureK: o.captureK,
      prompts: prompts.map((p) => Int32Array.from(p)),
      settings,
      seed,
      stream0,
      stopId: stopIds[0] ?? -1,
      stopIds,
      steps: steps - s0,
      modelVersion: opts.modelVersion ?? null,
    };
  }

  /** Frees the cache and buffers (the model stays). */
  dispose(): void {
    this.cache.dispose();
    disposeSampleBuffers(this.#buffers);
  }

  /** Number of readbacks so far on the runtime (tests use it to prove one per batch). */
  static readCount(): number {
    return runtime().counters.reads;
  }
}

function checkU32(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new RangeError(`rollout: ${name} must be an integer in [0, 2^32), got ${v}`);
  }
  return v;
}

function checkId(name: string, v: number, V: number): number {
  if (!Number.isInteger(v) || v < 0 || v >= V) {
    throw new RangeError(`rollout: ${name} must be an integer in [0, ${V}), got ${v}`);
  }
  return v;
}

// The stop tokens of `stop` (one id, a list, or undefined / -1 for none), checked and deduplicated.
function stopTokens(stop: number | readonly number[] | undefined, V: number): number[] {
  if (stop === undefined || stop === -1) return [];
  const list = typeof stop === "number" ? [stop] : [...stop];
  const ids = [...new Set(list.map((id) => checkId("stopId", id, V)))];
  if (ids.length > MAX_STOP_IDS) {
    throw new RangeError(
      `rollout: ${ids.length} stop tokens (${ids.join(", ")}), at most ${MAX_STOP_IDS}`,
    );
  }
  return ids;
}

function stripUndefined(o: GenerateOptions): Partial<SamplingSettings> {
  const out: Partial<SamplingSettings> = {};
  if (o.temperature !== undefined) out.temperature = o.temperature;
  if (o.topK !== undefined) out.topK = o.topK;
  if (o.topP !== undefined) out.topP = o.topP;
  return out;
}

/** The generated ids of row `b` (up to its length, the stop token included). */
export function completion(r: RolloutBatch, b: number): Int32Array {
  return r.tokens.slice(b * r.maxNew, b * r.maxNew + r.lengths[b]);
}
