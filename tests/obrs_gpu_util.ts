/**
 * Shared pieces of the OBRS GPU tests: random logits of the shapes that break kernels (odd sizes,
 * ties, -Inf, very peaked and very flat rows, heavy tails), and one-call run-and-read helpers.
 *
 * @module
 */
import { Rng } from "../src/util/rng.ts";
import { logSoftmax } from "../src/obrs/reference/mod.ts";
import {
  ComputeBatch,
  getGpu,
  type GpuContext,
  readBuffers,
  uploadBuffer,
} from "../src/gpu/mod.ts";

/** The shared test device. */
export const gpu: GpuContext = await getGpu();

/** Kinds of rows the generators mix. */
export type RowKind = "normal" | "peaked" | "flat" | "ties" | "neginf" | "zipf" | "ascending";

/** One row of V logits of the given kind. */
export function logitRow(rng: Rng, vocab: number, kind: RowKind): Float32Array {
  const x = new Float32Array(vocab);
  switch (kind) {
    case "normal":
      for (let i = 0; i < vocab; i++) x[i] = 3 * rng.normal();
      break;
    case "peaked":
      for (let i = 0; i < vocab; i++) x[i] = rng.normal();
      x[rng.int(vocab)] = 60;
      break;
    case "flat":
      x.fill(0.25);
      break;
    case "ties":
      for (let i = 0; i < vocab; i++) x[i] = Math.round(2 * rng.normal()) / 2;
      break;
    case "neginf":
      for (let i = 0; i < vocab; i++) x[i] = rng.uniform() < 0.5 ? -Infinity : rng.normal();
      x[rng.int(vocab)] = 1; // keep at least one finite entry
      break;
    case "ascending": // the streaming top-k's worst case: every chunk beats the threshold
      for (let i = 0; i < vocab; i++) x[i] = i / vocab;
      break;
    case "zipf": {
      // log p ∝ -1.1 log(rank) over a random permutation: the heavy tail of real LM rows.
      const perm = rng.shuffle(Array.from({ length: vocab }, (_, i) => i));
      for (let r = 0; r < vocab; r++) x[perm[r]] = -1.1 * Math.log(r + 1) + 0.3 * rng.normal();
      break;
    }
  }
  return x;
}

/** N rows cycling through `kinds`. */
export function logitMatrix(rng: Rng, rows: number, vocab: number, kinds: RowKind[]): Float32Array {
  const x = new Float32Array(rows * vocab);
  for (let r = 0; r < rows; r++) x.set(logitRow(rng, vocab, kinds[r % kinds.length]), r * vocab);
  return x;
}

/** Creates a zeroed storage buffer. */
export function zeros(bytes: number): GPUBuffer {
  return gpu.device.createBuffer({
    size: Math.max(16, Math.ceil(bytes / 4) * 4),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
}

/** Uploads host data. */
export function upload(data: Float32Array | Uint32Array): GPUBuffer {
  return uploadBuffer(gpu, data);
}

/** Records with `record`, submits once, reads `buffers` back with one wait. */
export async function run(
  record: (batch: ComputeBatch) => void,
  buffers: GPUBuffer[],
): Promise<ArrayBuffer[]> {
  const b = new ComputeBatch(gpu);
  record(b);
  b.submit();
  return await readBuffers(gpu, buffers.map((buffer) => ({ buffer })));
}

/** f32 → f64 copy (exact). */
export function f64(x: Float32Array): Float64Array {
  return Float64Array.from(x);
}

/** Largest |a − b| over finite pairs; equal infinities count 0, one-sided infinities Infinity. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    const d = Math.abs(a[i] - b[i]);
    m = Math.max(m, Number.isNaN(d) ? Infinity : d);
  }
  return m;
}

const BATCH_KINDS: RowKind[] = ["normal", "zipf", "peaked", "ties", "neginf", "flat", "zipf"];

/** A batch of three related models: p_new = p_inf + noise, p_ref = p_new + smaller noise. */
export function makeBatch(seed: number, rows: number, vocab: number) {
  const rng = new Rng(seed);
  const inf = logitMatrix(rng, rows, vocab, BATCH_KINDS);
  const nw = new Float32Array(inf.length), ref = new Float32Array(inf.length);
  for (let r = 0; r < rows; r++) {
    const sigma = [0, 0.1, 0.5, 1.5][r % 4];
    for (let i = r * vocab; i < (r + 1) * vocab; i++) {
      nw[i] = inf[i] + sigma * rng.normal();
      ref[i] = nw[i] + 0.2 * rng.normal();
    }
  }
  const logpInf = logSoftmax(f64(inf), vocab);
  const logpNew = logSoftmax(f64(nw), vocab);
  const logpRef = logSoftmax(f64(ref), vocab);
  // Tokens drawn from p_inf, as a rollout would.
  const tokens = new Uint32Array(rows);
  for (let r = 0; r < rows; r++) {
    let u = rng.uniform(), t = 0;
    for (; t < vocab - 1; t++) {
      u -= Math.exp(logpInf[r * vocab + t]);
      if (u < 0) break;
    }
    while (logpInf[r * vocab + t] === -Infinity) t--;
    tokens[r] = t;
  }
  const valid = Uint8Array.from({ length: rows }, (_, r) => (r % 11 === 10 ? 0 : 1));
  return { rows, vocab, inf, nw, ref, logpInf, logpNew, logpRef, tokens, valid };
}
