/**
 * Recording one sampling step of the rollout engine into a batch: the top-k capture (the OBRS
 * fused row pass, `recordRowTopk` from src/obrs/gpu, raw values) and kernels/sample_row.wgsl, which
 * teacher-forces prompts, samples, and writes the token, its processed and raw log-probs and the
 * captured top-k into preallocated `[B, maxNew, …]` outputs on the GPU. Nothing is read back here.
 *
 * @module
 */
import rngSource from "../../kernels/rng.wgsl" with { type: "text" };
import commonSource from "../../kernels/sample_common.wgsl" with { type: "text" };
import sampleSource from "../../kernels/sample_row.wgsl" with { type: "text" };
import { type ComputeBatch, grid, type Kernel } from "../gpu/mod.ts";
import { recordRowTopk } from "../obrs/gpu/ops.ts";
import {
  empty,
  f32,
  fitsOneBinding,
  keep,
  params,
  rowBlocks,
  runtime,
  type Tensor,
} from "../tensor/mod.ts";
import { type SamplingSettings, validateSampling } from "./sampling_reference.ts";

const sampleKernel: Kernel = { name: "sample_row", code: rngSource + commonSource + sampleSource };

/** Marks "no stop token" in {@link SampleStepArgs.stopIds}. */
export const NO_STOP = 0xffffffff;

/** Most stop tokens one batch can have (the kernel compares each sampled token with each). */
export const MAX_STOP_IDS = 4;

/** GPU buffers of a rollout's sampling state (allocated once per engine, reused every batch). */
export interface SampleBuffers {
  /** Rows B. */
  B: number;
  /** Generated-token budget per row. */
  maxNew: number;
  /** Captured top-k width (0: none). */
  captureK: number;
  /** u32 `[B, 4]`: finished, generated count, flags, stopped by the stop token. */
  state: Tensor;
  /** i32 `[B]`: the model's input at the next step. */
  nextTokens: Tensor;
  /** u32 `[B, maxNew, 3]`: token, bits of the processed log-prob, bits of the raw log-prob. */
  outMain: Tensor;
  /** u32 `[B, maxNew, captureK, 2]` (one element when captureK = 0): id, bits of processed log-prob. */
  outTop: Tensor;
  /** Scratch of the capture: f32 `[B, K]` raw values, u32 `[B, K]` ids, f32 `[B, 4]` row info. */
  capVals: Tensor;
  capIds: Tensor;
  capInfo: Tensor;
}

/** Allocates the sampling buffers (contents set by {@link resetSampleState} and the kernels). */
export function allocSampleBuffers(B: number, maxNew: number, captureK: number): SampleBuffers {
  if (!Number.isInteger(captureK) || captureK < 0) {
    throw new RangeError(`rollout: top-k capture must be an integer >= 0, got ${captureK}`);
  }
  const K = Math.max(1, captureK);
  // Kept: the buffers live as long as the engine, whatever scope allocates them.
  return {
    B,
    maxNew,
    captureK,
    state: keep(empty([B, 4], "u32", "sample state")),
    nextTokens: keep(empty([B], "i32", "next tokens")),
    outMain: keep(empty([B, maxNew, 3], "u32", "sample out")),
    outTop: keep(empty(captureK > 0 ? [B, maxNew, captureK, 2] : [1], "u32", "sample top")),
    capVals: keep(empty([B, K], "f32", "capture vals")),
    capIds: keep(empty([B, K], "u32", "capture ids")),
    capInfo: keep(empty([B, 4], "f32", "capture info")),
  };
}

/** Frees every buffer of `b`. */
export function disposeSampleBuffers(b: SampleBuffers): void {
  for (const t of [b.state, b.nextTokens, b.outMain, b.outTop, b.capVals, b.capIds, b.capInfo]) {
    t.dispose();
  }
}

/** Arguments of {@link recordSampleStep}. */
export interface SampleStepArgs {
  /** f32 `[rows, V]` contiguous: the model's output at position `step` (rows ≤ buffers.B). */
  logits: Tensor;
  /** Sampling buffers. */
  buffers: SampleBuffers;
  /** i32 `[rows + rows·promptCols]`: prompt lengths, then the prompts row-major (right-padded). */
  prompt: Tensor;
  /** Columns of the prompt block. */
  promptCols: number;
  /** Decode position of `logits`. */
  step: number;
  /** Sampling settings. */
  settings: SamplingSettings;
  /** RNG seed (u32). */
  seed: number;
  /** RNG stream of row 0 (row r draws from stream `stream0 + r`); default 0. */
  stream0?: number;
  /** Stop tokens (at most {@link MAX_STOP_IDS}; empty: none). */
  stopIds: readonly number[];
  /** Token fed to finished rows. */
  padId: number;
}

/**
 * Records the capture (the OBRS row pass, `recordRowTopk`, raw values) and the sampling kernel
 * for one decode step into `batch`. Returns scratch buffers to destroy after `batch` is submitted.
 */
export function recordSampleStep(batch: ComputeBatch, a: SampleStepArgs): GPUBuffer[] {
  const rt = runtime();
  const b = a.buffers;
  const [rows, V] = a.logits.shape;
  validateSampling(a.settings, V);
  if (rows > b.B) throw new RangeError(`rollout: ${rows} rows exceed the engine's batch ${b.B}`);
  if (!a.logits.isContiguous) throw new Error("rollout: logits must be contiguous");
  if (a.stopIds.length > MAX_STOP_IDS) {
    throw new RangeError(`rollout: ${a.stopIds.length} stop tokens, at most ${MAX_STOP_IDS}`);
  }
  const stops = Array.from({ length: MAX_STOP_IDS }, (_, i) => (a.stopIds[i] ?? NO_STOP) >>> 0);
  const K = b.captureK;
  if (K > V) throw new RangeError(`rollout: top-k capture ${K} exceeds the vocabulary ${V}`);
  // Logits over one storage binding (a 151,936-token vocabulary, ~220 rows per 128 MiB) are read
  // in blocks of rows: the capture tiles them itself (to the runtime's limit, which tests lower),
  // the sampling kernel takes one dispatch per block.
  const temps = K > 0
    ? recordRowTopk(rt.gpu, batch, {
      logits: a.logits.buffer,
      rows,
      vocab: V,
      k: K,
      vals: b.capVals.buffer,
      ids: b.capIds.buffer,
      info: b.capInfo.buffer,
      withLse: false,
      maxBindingBytes: rt.storageBindingLimit,
    })
    : [];
  const blocks = fitsOneBinding(a.logits)
    ? [{ row0: 0, rows, binding: a.logits.binding }]
    : rowBlocks(a.logits, V, `rollout: logits ${a.logits.describe()}`);
  const s = a.settings;
  for (const block of blocks) {
    batch.dispatch({
      kernel: sampleKernel,
      constants: { WG: 256, CAPK: K },
      bindings: [
        block.binding,
        b.capVals.binding,
        b.capIds.binding,
        a.prompt.binding,
        b.state.binding,
        b.nextTokens.binding,
        b.outMain.binding,
        b.outTop.binding,
        params([
          rows,
          V,
          s.topK,
          a.seed >>> 0,
          f32(s.temperature),
          f32(s.topP),
          a.step,
          a.promptCols,
          b.maxNew,
          a.padId,
          (a.stream0 ?? 0) >>> 0,
          ...stops,
          block.row0,
          block.rows,
        ]),
      ],
      workgroups: grid(block.rows),
    });
  }
  return temps;
}

/** Decoded outputs of a finished sampling run (one readback of `state`, `outMain`, `outTop`). */
export interface SampleOutputs {
  /** i32 `[B, maxNew]` generated ids (pad beyond each row's length). */
  tokens: Int32Array;
  /** f32 `[B, maxNew]` log-probs under the processed (sampling) distribution. */
  logProbs: Float32Array;
  /** f32 `[B, maxNew]` log-probs under the raw model. */
  rawLogProbs: Float32Array;
  /** i32 `[B, maxNew, K]` captured top-k ids. */
  topIds: Int32Array;
  /** f32 `[B, maxNew, K]` their processed log-probs (-inf where truncated). */
  topLogProbs: Float32Array;
  /** Generated tokens per row (the stop token included). */
  lengths: Int32Array;
  /** 1 where the row ended with the stop token. */
  stopped: Uint8Array;
  /** Per-row flags: 1 non-finite logits, 2 a row of all -inf. */
  flags: Uint32Array;
}

/** Unpacks the raw readback of {@link SampleBuffers} for `rows` rows (pads past each length). */
export function unpackSampleOutputs(
  b: SampleBuffers,
  rows: number,
  state: Uint32Array,
  main: Uint32Array,
  top: Uint32Array,
  padId: number,
): SampleOutputs {
  const N = b.maxNew, K = b.captureK;
  const tokens = new Int32Array(rows * N).fill(padId);
  const logProbs = new Float32Array(rows * N);
  const rawLogProbs = new Float32Array(rows * N);
  const topIds = new Int32Array(rows * N * K).fill(padId);
  const topLogProbs = new Float32Array(rows * N * K);
  const lengths = new Int32Array(rows);
  const stopped = new Uint8Array(rows);
  const flags = new Uint32Array(rows);
  const bits = new Float32Array(1);
  const asU = new Uint32Array(bits.buffer);
  const f = (u: number) => ((asU[0] = u), bits[0]);
  for (let r = 0; r < rows; r++) {
    lengths[r] = state[r * 4 + 1];
    flags[r] = state[r * 4 + 2];
    stopped[r] = state[r * 4 + 3];
    for (let g = 0; g < lengths[r]; g++) {
      const o = r * N + g;
      tokens[o] = main[o * 3];
      logProbs[o] = f(main[o * 3 + 1]);
      rawLogProbs[o] = f(main[o * 3 + 2]);
      for (let j = 0; j < K; j++) {
        topIds[o * K + j] = top[(o * K + j) * 2];
        topLogProbs[o * K + j] = f(top[(o * K + j) * 2 + 1]);
      }
    }
  }
  return { tokens, logProbs, rawLogProbs, topIds, topLogProbs, lengths, stopped, flags };
}

/** Clears the state for a new batch and sets each row's first input token (one upload each). */
export function resetSampleState(b: SampleBuffers, firstTokens: Int32Array): void {
  const rt = runtime();
  rt.write(b.state.buffer, new Uint32Array(b.B * 4));
  const first = new Int32Array(b.B);
  first.set(firstTokens.subarray(0, b.B));
  rt.write(b.nextTokens.buffer, first);
}
