/**
 * Correctness gate of the OBRS benchmark: every version is run once and compared with the float64
 * reference before it is timed, so that a wrong fast kernel is reported as wrong, not timed. Two
 * inputs: a small matrix of the rows that break kernels (ties, -Inf, flat, peaked, Zipf, and an
 * ascending row whose every chunk beats the threshold), and a few rows of the timed matrix itself
 * (first, second, middle, last), read back and checked at the benchmark's shape.
 *
 * @module
 */
import { ComputeBatch } from "../../src/gpu/batch.ts";
import { createStorageBuffer, readBuffers, uploadBuffer } from "../../src/gpu/buffers.ts";
import type { GpuContext } from "../../src/gpu/device.ts";
import type { LogitsSource } from "../../src/obrs/gpu/mod.ts";
import { topkIds } from "../../src/obrs/reference/mod.ts";
import { Rng } from "../../src/util/rng.ts";

/** One row's reference: its logits, top-k ids (ties to the lower id), log-sum-exp. */
interface RowRef {
  x: Float32Array;
  ids: Int32Array;
  lse: number;
}

/** The buffers a recorder fills: logits `[rows, vocab]`, outputs `[rows, k]`, info `[rows, 4]`. */
export interface CheckBuffers {
  logits: LogitsSource;
  rows: number;
  vocab: number;
  k: number;
  tokens: GPUBuffer;
  vals: GPUBuffer;
  ids: GPUBuffer;
  info: GPUBuffer;
  lse: GPUBuffer;
}

/** What a check compares: raw top-k values, fused log-probs and row summary, or the lse alone. */
export type CheckMode = "topk" | "fused" | "lse";

/** A small matrix of the rows that break top-k kernels. */
export function edgeMatrix(rows: number, vocab: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const x = new Float32Array(rows * vocab);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * vocab, (r + 1) * vocab);
    switch (r % 7) {
      case 0:
        row.forEach((_, i) => row[i] = 3 * rng.normal());
        break;
      case 1: // ties
        row.forEach((_, i) => row[i] = Math.round(2 * rng.normal()) / 2);
        break;
      case 2: // masked vocabulary
        row.forEach((_, i) => row[i] = rng.uniform() < 0.5 ? -Infinity : rng.normal());
        row[rng.int(vocab)] = 1;
        break;
      case 3:
        row.fill(0.25);
        break;
      case 4: // every chunk beats the threshold
        row.forEach((_, i) => row[i] = i / vocab);
        break;
      case 5:
        row.forEach((_, i) => row[i] = rng.normal());
        row[rng.int(vocab)] = 60;
        break;
      default: // heavy tail
        row.forEach((_, i) => row[i] = -1.1 * Math.log(1 + rng.int(vocab)) + 0.3 * rng.normal());
    }
  }
  return x;
}

function rowRef(x: Float32Array, k: number): RowRef {
  const row = Float64Array.from(x);
  let m = -Infinity;
  for (const v of row) m = Math.max(m, v);
  let s = 0;
  for (const v of row) s += Math.exp(v - m);
  return { x, ids: topkIds(row, k), lse: m + Math.log(s) };
}

/** First mismatch of one row's outputs with its reference, or undefined. */
function compareRow(
  mode: CheckMode,
  ref: RowRef,
  token: number,
  got: { vals: Float32Array; ids: Uint32Array; info: Float32Array; lse: number },
): string | undefined {
  const tol = (want: number) => 2e-5 * Math.max(1, Math.abs(want));
  if (mode === "lse") {
    return Math.abs(got.lse - ref.lse) <= tol(ref.lse)
      ? undefined
      : `lse ${got.lse}, want ${ref.lse}`;
  }
  for (let j = 0; j < ref.ids.length; j++) {
    const id = ref.ids[j];
    if (got.ids[j] !== id) return `id[${j}] ${got.ids[j]}, want ${id}`;
    const want = mode === "topk" ? ref.x[id] : ref.x[id] - ref.lse;
    const ok = mode === "topk" ? got.vals[j] === want : Math.abs(got.vals[j] - want) <= tol(want);
    if (!ok) return `value[${j}] ${got.vals[j]}, want ${want}`;
  }
  if (mode === "fused") {
    const lse = got.info[0] + got.info[3];
    if (!(Math.abs(lse - ref.lse) <= tol(ref.lse))) return `lse ${lse}, want ${ref.lse}`;
    const want = ref.x[token] - ref.lse;
    const sampled = got.info[1];
    if (!(sampled === want || Math.abs(sampled - want) <= tol(want))) {
      return `sampled log-prob ${sampled}, want ${want}`;
    }
    if (got.info[2] !== 0) return `flags ${got.info[2]}`;
  }
  return undefined;
}

/** Where row r lies: its buffer and byte offset. */
function rowAt(src: LogitsSource, rows: number, vocab: number, r: number) {
  const blocks = src instanceof GPUBuffer ? [{ buffer: src, rows }] : src;
  let start = 0;
  for (const b of blocks) {
    if (r < start + b.rows) return { buffer: b.buffer, offset: (r - start) * vocab * 4 };
    start += b.rows;
  }
  throw new RangeError(`row ${r} is outside the ${rows} rows`);
}

/** Checks recorders against the reference on the edge matrix and on rows of the timed matrix. */
export class Checker {
  #gpu: GpuContext;
  #large: CheckBuffers;
  #largeTokens: Uint32Array;
  #sample: number[];
  #largeRefs?: RowRef[];
  #small: CheckBuffers;
  #smallX: Float32Array;
  #smallTokens: Uint32Array;
  #smallRefs: RowRef[];

  /**
   * `large`: the timed matrix and output buffers (with `tokens` holding `tokens`); a small edge
   * matrix of the same k (and V = `smallVocab`) is made here.
   */
  constructor(gpu: GpuContext, large: CheckBuffers, tokens: Uint32Array, smallVocab = 12000) {
    this.#gpu = gpu;
    this.#large = large;
    this.#largeTokens = tokens;
    const { rows } = large;
    this.#sample = [...new Set([0, 1, Math.floor(rows / 2), rows - 1])].filter((r) => r < rows);
    const sRows = 14, k = Math.min(large.k, smallVocab);
    this.#smallX = edgeMatrix(sRows, smallVocab, 7);
    const rng = new Rng(8);
    this.#smallTokens = Uint32Array.from({ length: sRows }, () => rng.int(smallVocab));
    for (let r = 0; r < sRows; r++) {
      // A token at a -Inf entry has log-prob -Inf: move it to a finite one.
      while (this.#smallX[r * smallVocab + this.#smallTokens[r]] === -Infinity) {
        this.#smallTokens[r] = (this.#smallTokens[r] + 1) % smallVocab;
      }
    }
    this.#smallRefs = Array.from(
      { length: sRows },
      (_, r) => rowRef(this.#smallX.subarray(r * smallVocab, (r + 1) * smallVocab), k),
    );
    const buf = (bytes: number) => createStorageBuffer(gpu, Math.max(16, bytes), "check");
    this.#small = {
      logits: uploadBuffer(gpu, this.#smallX, "check logits"),
      rows: sRows,
      vocab: smallVocab,
      k,
      tokens: uploadBuffer(gpu, this.#smallTokens, "check tokens"),
      vals: buf(sRows * k * 4),
      ids: buf(sRows * k * 4),
      info: buf(sRows * 16),
      lse: buf(sRows * 4),
    };
  }

  /**
   * Runs `record` on the edge matrix, then on the timed matrix, and compares with the reference.
   * Returns the first mismatch ("edge row 4: id[3] 17, want 16") or undefined when both agree.
   */
  async check(
    mode: CheckMode,
    record: (batch: ComputeBatch, b: CheckBuffers) => GPUBuffer[] | void,
  ): Promise<string | undefined> {
    const small = await this.#run(mode, record, this.#small, [...this.#smallRefs.keys()]);
    const edge = small.findIndex((g, r) =>
      compareRow(mode, this.#smallRefs[r], this.#smallTokens[r], g) !== undefined
    );
    if (edge >= 0) {
      const why = compareRow(mode, this.#smallRefs[edge], this.#smallTokens[edge], small[edge]);
      return `edge matrix row ${edge} (V ${this.#small.vocab}): ${why}`;
    }
    const large = await this.#run(mode, record, this.#large, this.#sample);
    const refs = await this.#largeRefsOnce();
    for (const [i, r] of this.#sample.entries()) {
      const why = compareRow(mode, refs[i], this.#largeTokens[r], large[i]);
      if (why) return `row ${r} of the timed matrix: ${why}`;
    }
    return undefined;
  }

  async #largeRefsOnce(): Promise<RowRef[]> {
    if (this.#largeRefs) return this.#largeRefs;
    const { logits, rows, vocab, k } = this.#large;
    const data = await readBuffers(
      this.#gpu,
      this.#sample.map((r) => ({ ...rowAt(logits, rows, vocab, r), size: vocab * 4 })),
    );
    this.#largeRefs = data.map((d) => rowRef(new Float32Array(d), k));
    return this.#largeRefs;
  }

  async #run(
    mode: CheckMode,
    record: (batch: ComputeBatch, b: CheckBuffers) => GPUBuffer[] | void,
    b: CheckBuffers,
    rows: number[],
  ) {
    const batch = new ComputeBatch(this.#gpu);
    const temps = record(batch, b) ?? [];
    batch.submit();
    const { k } = b;
    const reqs = rows.flatMap((r) =>
      mode === "lse" ? [{ buffer: b.lse, offset: r * 4, size: 4 }] : [
        { buffer: b.vals, offset: r * k * 4, size: k * 4 },
        { buffer: b.ids, offset: r * k * 4, size: k * 4 },
        { buffer: b.info, offset: r * 16, size: 16 },
      ]
    );
    const out = await readBuffers(this.#gpu, reqs);
    for (const t of temps) t.destroy();
    return rows.map((_, i) => {
      if (mode === "lse") {
        const lse = new Float32Array(out[i])[0];
        return {
          vals: new Float32Array(0),
          ids: new Uint32Array(0),
          info: new Float32Array(4),
          lse,
        };
      }
      return {
        vals: new Float32Array(out[3 * i]),
        ids: new Uint32Array(out[3 * i + 1]),
        info: new Float32Array(out[3 * i + 2]),
        lse: NaN,
      };
    });
  }

  /** Frees the edge matrix's buffers. */
  destroy(): void {
    const s = this.#small;
    for (const b of [s.logits as GPUBuffer, s.tokens, s.vals, s.ids, s.info, s.lse]) b.destroy();
  }
}
