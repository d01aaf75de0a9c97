/**
 * Input types and checks of {@link jackpotWeights}: every bad argument fails before any GPU work,
 * with one sentence naming it.
 *
 * @module
 */
import { checkStreamOptions } from "./topk.ts";
import type { GpuContext } from "../../gpu/device.ts";
import { uploadBuffer } from "../../gpu/buffers.ts";

/**
 * Consecutive rows of a logits matrix in a buffer of their own: row-major `[rows, V]` f32 from
 * byte 0. A matrix larger than maxBufferSize (16,384 × 151,936 f32 is 9.96 GB) can only live on
 * the GPU as several of these, one per micro-batch.
 */
export interface LogitBlock {
  /** The block's buffer: STORAGE usage and at least rows·V·4 bytes. */
  buffer: GPUBuffer;
  /** Rows in the block (a positive integer). */
  rows: number;
}

/** Logits already on the GPU: one buffer, or row blocks in order (the recorders' input). */
export type LogitsSource = GPUBuffer | readonly LogitBlock[];

/** Whether logits data are row blocks (rather than one buffer or host data). */
export function isBlocks(x: Logits["data"]): x is readonly LogitBlock[] {
  return Array.isArray(x);
}

/** A `[rows, vocab]` f32 matrix of logits (or log-probs): on the GPU already, or host data. */
export interface Logits {
  /**
   * Row-major f32 values: one GPUBuffer (STORAGE usage, at least rows·vocab·4 bytes), row blocks
   * whose rows sum to the matrix's, or host data (uploaded as one buffer).
   *
   * @example
   * ```ts
   * const logits: Logits = { data: [{ buffer: a, rows: 4096 }, { buffer: b, rows: 4096 }], shape: [8192, v] };
   * ```
   */
  data: GPUBuffer | Float32Array | readonly LogitBlock[];
  /** [rows N, vocab V]. */
  shape: readonly [number, number];
}

/** Per-row values `[N]` (or `[N, k]`), on the GPU or on the host. */
export type RowValues<T extends Float32Array | Uint32Array | Int32Array | Uint8Array> =
  | GPUBuffer
  | T;

/** The rollout model's side, from its full logits (trainer-side forward). */
export interface ActorFromLogits {
  /** p_inf logits `[N, V]`. */
  logits: Logits;
}

/** The rollout model's side as captured at generation (SPEC §7). */
export interface ActorFromTopK {
  /** Captured top-k ids `[N, capturedK]` (any order, no repeats). */
  topkIds: RowValues<Uint32Array | Int32Array>;
  /** log p_inf at those ids `[N, capturedK]`. */
  topkLogp: RowValues<Float32Array>;
  /** Number of ids captured per row. */
  capturedK: number;
  /** log p_inf of the sampled token `[N]`, as recorded at generation. */
  sampledLogp: RowValues<Float32Array>;
  /**
   * Optional trainer-side full logits of the rollout model: p_inf on the policy's top-k ids that
   * were not captured, and exact Z. Without them those ids add nothing to Z_approx (SPEC §3 choice).
   */
  logits?: Logits;
}

/** One batch of N sampled tokens. */
export interface JackpotBatch {
  /** Sampled token ids `[N]`. */
  tokens: RowValues<Uint32Array | Int32Array>;
  /** 1 for real tokens, 0 for padding `[N]`; default all real. */
  valid?: RowValues<Uint32Array | Uint8Array>;
  /** p_inf, the rollout model. */
  inf: ActorFromLogits | ActorFromTopK;
  /** p_new logits `[N, V]` (their top-k picks half of Z_approx's ids). */
  newLogits: Logits;
  /**
   * p_ref: full logits (needed when target is "ref"), or the sampled token's log-prob `[N]` (enough
   * for target "new", whose ρ uses p_ref/p_new, and for the baselines).
   */
  ref?: { logits: Logits } | { sampledLogp: RowValues<Float32Array> };
}

/** Options of {@link jackpotWeights}. */
export interface JackpotParams {
  /** OBRS budget λ > 0 (larger rejects more). Default 1. */
  lambda?: number;
  /** Top-k size behind Z_approx. Default 20. */
  k?: number;
  /** Clip of w. Default 3. */
  c1?: number;
  /** Clip of p_ref/p_new (target "new" only). Default 3. */
  c2?: number;
  /** p_target: "new" (Algorithm 1) or "ref". Default "new". */
  target?: "ref" | "new";
  /** Seed of the mask: row n is accepted iff uniformAt(seed, n, 0) < a_n. */
  seed: number;
  /** Also compute exact Z over the whole vocabulary (reads both matrices again). */
  exactZ?: boolean;
  /** Also write the baseline weights IS, TIS (cap) and IcePop ([low, high]). */
  baseline?: { tisCap: number; icepopLow: number; icepopHigh: number };
  /** "throw" (default): NaN/+Inf inputs raise {@link NonFiniteInputError}; "report": zero them. */
  onNonFinite?: "throw" | "report";
  /** Top-k method; default "auto". */
  topkMethod?: "auto" | "stream" | "sort";
  /** Let the streaming top-k read vec4 rows when V % 4 == 0; default true (bench/obrs v5 vs v4). */
  topkVec4?: boolean;
  /** Split-row top-k: segments per row (default 1, the fused pass; see `RowTopkArgs.segments`). */
  topkSegments?: number;
  /** vec4 groups per thread per chunk of the streaming top-k: 4 (default) or 8. */
  topkGroups?: 4 | 8;
  /** Streaming top-k reads its candidate count with 2 barriers per chunk (default false). */
  topkUniformCount?: boolean;
  /** Binding limit below the device's (tests use it to force row tiles). */
  maxBindingBytes?: number;
}

/**
 * Rows whose inputs held NaN or +Inf (or were all -Inf, or whose ids were out of range or repeated
 * in a captured top-k, or whose captured log-probs were above 0): their weights and mask are 0.
 */
export class NonFiniteInputError extends Error {
  /** Rows flagged. */
  count: number;
  /** First flagged row. */
  firstRow: number;
  /** @param count rows flagged; @param firstRow the first of them. */
  constructor(count: number, firstRow: number) {
    super(
      `${count} valid row(s) have NaN or +Inf logits/log-probs, an all -Inf row, an id out of ` +
        `range or repeated, or a captured log-prob above 0 (first: row ${firstRow}); pass ` +
        `onNonFinite: "report" to zero them and continue`,
    );
    this.name = "NonFiniteInputError";
    this.count = count;
    this.firstRow = firstRow;
  }
}

function checkPositiveNumber(name: string, x: number): void {
  if (!(typeof x === "number" && x > 0 && x < Infinity)) {
    throw new RangeError(`${name} must be a finite number > 0, got ${x}`);
  }
}

/** Parameters with defaults applied and checked against the vocabulary size. */
export type ResolvedParams =
  & Required<Omit<JackpotParams, "baseline" | "maxBindingBytes">>
  & Pick<JackpotParams, "baseline" | "maxBindingBytes">;

/** Applies defaults and checks λ, k, c1, c2, target, seed and the baseline. */
export function resolveParams(p: JackpotParams, vocab: number): ResolvedParams {
  const r: ResolvedParams = {
    lambda: p.lambda ?? 1,
    k: p.k ?? 20,
    c1: p.c1 ?? 3,
    c2: p.c2 ?? 3,
    target: p.target ?? "new",
    seed: p.seed,
    exactZ: p.exactZ ?? false,
    onNonFinite: p.onNonFinite ?? "throw",
    topkMethod: p.topkMethod ?? "auto",
    topkVec4: p.topkVec4 ?? true,
    topkSegments: p.topkSegments ?? 1,
    topkGroups: p.topkGroups ?? 4,
    topkUniformCount: p.topkUniformCount ?? false,
    baseline: p.baseline,
    maxBindingBytes: p.maxBindingBytes,
  };
  checkPositiveNumber("lambda", r.lambda);
  checkPositiveNumber("c1", r.c1);
  checkPositiveNumber("c2", r.c2);
  if (!Number.isInteger(r.k) || r.k < 1) {
    throw new RangeError(`k must be an integer >= 1, got ${r.k}`);
  }
  if (r.k > vocab) throw new RangeError(`k = ${r.k} exceeds the vocabulary size V = ${vocab}`);
  if (r.target !== "new" && r.target !== "ref") {
    throw new RangeError(`target must be "ref" or "new", got ${String(r.target)}`);
  }
  if (!Number.isInteger(r.seed)) throw new RangeError(`seed must be an integer, got ${r.seed}`);
  if (r.onNonFinite !== "throw" && r.onNonFinite !== "report") {
    throw new RangeError(`onNonFinite must be "throw" or "report", got ${String(r.onNonFinite)}`);
  }
  if (!["auto", "stream", "sort"].includes(r.topkMethod)) {
    throw new RangeError(
      `topkMethod must be "auto", "stream" or "sort", got ${String(r.topkMethod)}`,
    );
  }
  checkStreamOptions(r.k, r.topkSegments, r.topkGroups);
  if (r.maxBindingBytes !== undefined) checkPositiveNumber("maxBindingBytes", r.maxBindingBytes);
  if (r.baseline) {
    const { tisCap, icepopLow, icepopHigh } = r.baseline;
    checkPositiveNumber("baseline.tisCap", tisCap);
    if (!(icepopLow >= 0 && icepopHigh >= icepopLow && icepopHigh < Infinity)) {
      throw new RangeError(
        `baseline IcePop band needs 0 <= low <= high < Infinity, got [${icepopLow}, ${icepopHigh}]`,
      );
    }
  }
  return r;
}

/** Checks that a matrix is [rows, vocab] and that its data holds that many values. */
export function checkLogits(name: string, m: Logits, rows: number, vocab: number): void {
  const [n, v] = m.shape;
  if (isBlocks(m.data)) {
    if (n !== rows || v !== vocab) {
      throw new RangeError(
        `${name} logits are [${n}, ${v}] but p_new logits are [${rows}, ${vocab}]: every model ` +
          `must give one row per token over the same vocabulary`,
      );
    }
    checkBlocks(`${name} logits`, m.data, n, v);
    return;
  }
  checkType(`${name} logits`, m.data, [Float32Array]);
  if (n !== rows || v !== vocab) {
    throw new RangeError(
      `${name} logits are [${n}, ${v}] but p_new logits are [${rows}, ${vocab}]: every model must ` +
        `give one row per token over the same vocabulary`,
    );
  }
  const bytes = m.data instanceof GPUBuffer ? m.data.size : m.data.byteLength;
  if (bytes < n * v * 4) {
    throw new RangeError(`${name} logits hold ${bytes} bytes, fewer than [${n}, ${v}] f32 needs`);
  }
}

/**
 * Checks row blocks of a `[rows, vocab]` matrix: each a STORAGE GPUBuffer of at least its rows·V·4
 * bytes, rows positive integers summing to the matrix's.
 */
export function checkBlocks(
  name: string,
  blocks: readonly LogitBlock[],
  rows: number,
  vocab: number,
): void {
  if (blocks.length === 0) throw new RangeError(`${name}: the list of row blocks is empty`);
  let sum = 0;
  blocks.forEach((b, i) => {
    const r = b?.rows;
    if (!Number.isInteger(r) || r < 1) {
      throw new RangeError(`${name} block ${i}: rows must be a positive integer, got ${r}`);
    }
    if (!(b.buffer instanceof GPUBuffer)) {
      throw new RangeError(`${name} block ${i}: buffer must be a GPUBuffer`);
    }
    checkType(`${name} block ${i}`, b.buffer, []);
    if (b.buffer.size < r * vocab * 4) {
      throw new RangeError(
        `${name} block ${i} holds ${b.buffer.size} bytes, fewer than [${r}, ${vocab}] f32 needs`,
      );
    }
    sum += r;
  });
  if (sum !== rows) {
    throw new RangeError(
      `${name}: the row blocks hold ${sum} rows in all, but the matrix has ${rows}`,
    );
  }
}

type ArrayType = typeof Float32Array | typeof Uint32Array | typeof Int32Array | typeof Uint8Array;

/**
 * Checks that `x` is a GPUBuffer with STORAGE usage or one of the accepted typed arrays: a
 * Float64Array of logits would pass a byte-size check and be read as f32 garbage, and a buffer
 * without STORAGE usage makes WebGPU drop the dispatches.
 */
export function checkType(name: string, x: unknown, types: ArrayType[]): void {
  if (x instanceof GPUBuffer) {
    if (!(x.usage & GPUBufferUsage.STORAGE)) {
      throw new RangeError(`${name}: the GPUBuffer needs STORAGE usage (usage is ${x.usage})`);
    }
    return;
  }
  if (types.some((t) => x instanceof t)) return;
  const names = types.map((t) => `a${t.name.startsWith("I") ? "n" : ""} ${t.name}`);
  const got = (x as { constructor?: { name?: string } })?.constructor?.name ?? typeof x;
  throw new RangeError(`${name} must be ${names.join(", ")} or a GPUBuffer, got ${got}`);
}

/** Checks the length (host arrays) or byte size (GPU buffers) of per-row values. */
export function checkRowValues(
  name: string,
  x: GPUBuffer | ArrayBufferView & { length: number },
  count: number,
  shape: string,
): void {
  if (x instanceof GPUBuffer) {
    if (x.size < count * 4) {
      throw new RangeError(`${name} holds ${x.size} bytes, fewer than ${shape} x 4 bytes`);
    }
  } else if (x.length !== count) {
    throw new RangeError(`${name} has ${x.length} entries, expected ${count} ${shape}`);
  }
}

/** Checks that host ids lie in [0, vocab) (GPU ids out of range are flagged by the kernels). */
export function checkIds(name: string, ids: GPUBuffer | ArrayLike<number>, vocab: number): void {
  if (ids instanceof GPUBuffer) return;
  for (let i = 0; i < ids.length; i++) {
    if (!(ids[i] >= 0 && ids[i] < vocab)) {
      throw new RangeError(`${name}[${i}] = ${ids[i]} is outside [0, V = ${vocab})`);
    }
  }
}

/** Checks that host `valid` entries are 0 or 1 (GPU buffers: any non-zero u32 counts as 1). */
export function checkValid(valid: GPUBuffer | ArrayLike<number>): void {
  if (valid instanceof GPUBuffer) return;
  for (let i = 0; i < valid.length; i++) {
    if (valid[i] !== 0 && valid[i] !== 1) {
      throw new RangeError(`valid[${i}] = ${valid[i]}, expected 0 or 1`);
    }
  }
}

/**
 * Captured log-probs above this are not log-probabilities (f32 rounding of a log-softmax can leave
 * a tiny positive value; the float64 reference allows the same slack on a row's log-sum-exp).
 */
export const CAPTURED_LOGP_TOLERANCE = 1e-4;

/**
 * Checks host log-probs captured at generation: none above {@link CAPTURED_LOGP_TOLERANCE} (NaN and
 * ±Inf are left to the kernels, which flag them). GPU buffers are checked by the kernels.
 */
export function checkLogProbValues(name: string, x: GPUBuffer | ArrayLike<number>): void {
  if (x instanceof GPUBuffer) return;
  for (let i = 0; i < x.length; i++) {
    if (x[i] > CAPTURED_LOGP_TOLERANCE && x[i] < Infinity) {
      throw new RangeError(`${name}[${i}] = ${x[i]} is not a log-probability (above 0)`);
    }
  }
}

/**
 * Checks that no row of host captured top-k ids `[N, k]` repeats an id: a repeat would count its
 * probability twice in Z_approx. GPU buffers are checked by the kernels (flag 8).
 */
export function checkDistinctIds(
  name: string,
  ids: GPUBuffer | ArrayLike<number>,
  k: number,
): void {
  if (ids instanceof GPUBuffer) return;
  const seen = new Set<number>();
  for (let r = 0; r * k < ids.length; r++) {
    seen.clear();
    for (let j = 0; j < k; j++) {
      const id = ids[r * k + j];
      if (seen.has(id)) throw new RangeError(`${name} row ${r} repeats id ${id}`);
      seen.add(id);
    }
  }
}

/** The logits on the GPU: blocks and buffers as they are, host data uploaded (into `temps`). */
export function logitsToGpu(
  gpu: GpuContext,
  x: Logits["data"],
  label: string,
  temps: GPUBuffer[],
): LogitsSource {
  return isBlocks(x) ? x : toGpu(gpu, x, label, temps);
}

/** A GPU buffer for `x`, uploading host data (which is recorded in `temps` for destruction). */
export function toGpu(
  gpu: GpuContext,
  x: GPUBuffer | Float32Array | Uint32Array | Int32Array | Uint8Array,
  label: string,
  temps: GPUBuffer[],
): GPUBuffer {
  if (x instanceof GPUBuffer) return x;
  const data = x instanceof Uint8Array ? Uint32Array.from(x) : x;
  const b = uploadBuffer(gpu, data, label);
  temps.push(b);
  return b;
}
