/**
 * A decode step's residual add + RMSNorm and the projection that reads it, two ways, per anchor at
 * the sampling batch (M = 64 rows, one token each), for each of the three products that read a
 * norm: the q/k/v projection (input norm), the gate/up projection (post-attention norm) and the
 * classifier (final norm). `composed` is what `addRmsNormMatmul` runs without fusing (the
 * add_rms_fwd4 dispatch, then the product: the skinny kernel on a GPU, split along K where its
 * planner chooses); `fused` is one skinny matmul reading A through the add-RMS prologue
 * (kernels/matmul_skinny_add_rms.wgsl; never split). Each is timed with GPU timestamps,
 * interleaved as in main.ts, and checked against the float64 reference afterwards (and the sum
 * against x + r in f32, bit for bit).
 *
 * ```sh
 * deno run -A bench/matmul/add_rms_qkv.ts          # every anchor (GPU host)
 * deno run -A bench/matmul/add_rms_qkv.ts --small  # the 0.8M anchor (CPU fallback: runs, checks)
 * ```
 *
 * @module
 */
import { ops } from "../../src/autograd/mod.ts";
import { ANCHORS, GENERATE_BENCH } from "../../src/nn/anchors.ts";
import { initTensors, readAll, tensor } from "../../src/tensor/mod.ts";
import { Rng } from "../../src/util/rng.ts";
import { recordKernels, timeWays } from "./ab.ts";
import { benchArgs, benchInt } from "../args.ts";

/** One product of one anchor. */
export interface AddRmsRow {
  anchor: string;
  /** Which projection: "qkv", "gateUp" or "head". */
  product: string;
  /** Rows, output columns, hidden size (K). */
  M: number;
  N: number;
  K: number;
  /** Products of this kind per decode step. */
  perStep: number;
  /** Median ms per product: composed, fused. */
  composedMs: number;
  fusedMs: number;
  /** The kernels each records for one product. */
  composedKernels: string[];
  fusedKernels: string[];
  /** Largest error / bound against the float64 reference (≤ 1 passes): composed, fused. */
  composedRatio: number;
  fusedRatio: number;
  /** Whether both sums equal x + r in f32, bit for bit. */
  sumsExact: boolean;
}

const U = 2 ** -24;
const EPS = 1e-6;

// Largest error / bound of `got` against rmsNorm(x + r, g)·wᵀ in float64 (w stored [N, K]); the
// bound is tests/matmul_skinny_add_rms_test.ts's: rstd·Σ|h·g·w|·(γ_{K+3} + ½γ_{K+4} + 5u).
function ratio(
  got: ArrayLike<number>,
  x: Float32Array,
  r: Float32Array,
  g: Float32Array,
  w: Float32Array,
  M: number,
  K: number,
): number {
  const N = w.length / K;
  const gamma = (n: number) => (n * U) / (1 - n * U);
  const rel = gamma(K + 3) + gamma(K + 4) / 2 + 5 * U;
  const hg = new Float64Array(K);
  let worst = 0;
  for (let m = 0; m < M; m++) {
    let ss = 0;
    for (let k = 0; k < K; k++) {
      const h = x[m * K + k] + r[m * K + k];
      ss += h * h;
      hg[k] = h * g[k];
    }
    const rstd = 1 / Math.sqrt(ss / K + EPS);
    for (let n = 0; n < N; n++) {
      let s = 0, abs = 0;
      for (let k = 0; k < K; k++) {
        const t = hg[k] * w[n * K + k];
        s += t;
        abs += Math.abs(t);
      }
      const e = Math.abs(got[m * N + n] - rstd * s) / (rstd * abs * rel + 1e-30);
      worst = Number.isNaN(e) ? Infinity : Math.max(worst, e);
    }
  }
  return worst;
}

/** The three norm-reading products of an anchor's decode step: name, N, per step. */
function products(name: string): Array<[string, number, number, number]> {
  const anchor = ANCHORS.find((a) => a.name === name);
  if (!anchor) throw new RangeError(`add_rms_qkv: unknown anchor '${name}'`);
  const c = anchor.config;
  return [
    ["qkv", (c.heads + 2 * c.kvHeads) * c.headDim, c.layers, c.hidden],
    ["gateUp", 2 * c.intermediate, c.layers, c.hidden],
    ["head", c.vocabSize, 1, c.hidden],
  ];
}

/**
 * Times and checks both ways for each product of each anchor named in `names` (default all).
 *
 * @example
 * ```ts
 * const rows = await benchAddRms(["29M"]);
 * console.log(rows.map((r) => (r.composedMs - r.fusedMs) * r.perStep)); // ms saved per step
 * ```
 */
export async function benchAddRms(
  names: readonly string[] = ANCHORS.map((a) => a.name),
  rounds = 20,
  warmupRounds = 3,
): Promise<AddRmsRow[]> {
  const rt = await initTensors();
  const rows: AddRmsRow[] = [];
  const M = GENERATE_BENCH.batch;
  for (const name of names) {
    for (const [product, N, perStep, K] of products(name)) {
      const rng = new Rng(2026);
      const x32 = Float32Array.from({ length: M * K }, () => rng.normal());
      const r32 = Float32Array.from({ length: M * K }, () => 0.5 * rng.normal());
      const g32 = Float32Array.from({ length: K }, () => 0.5 + rng.uniform());
      const w32 = Float32Array.from({ length: N * K }, () => rng.normal() / Math.sqrt(K));
      const x = tensor(x32, [M, K]), r = tensor(r32, [M, K]), g = tensor(g32, [K]);
      const stored = tensor(w32, [N, K]); // the projection as a model stores it, read transposed
      const w = ops.transpose(stored);
      const ways = [false, true].map((fused) => () =>
        ops.addRmsNormMatmul(x, r, g, w, EPS, { fused })
      );
      const [composedMs, fusedMs] = await timeWays(rt, ways, rounds, warmupRounds);
      // One product each, recorded apart to name its kernels, then read back and checked.
      const recorded = ways.map((way) => recordKernels(rt, way));
      const kernels = recorded.map((r) => r.kernels);
      const outs = recorded.map((r) => r.result);
      const got = await readAll(outs.flatMap((o) => [o.out, o.sum]));
      const [composedRatio, fusedRatio] = [got[0], got[2]].map((o) =>
        ratio(o as Float32Array, x32, r32, g32, w32, M, K)
      );
      const sumsExact = [got[1], got[3]].every((s) =>
        s.every((v, i) => v === Math.fround(x32[i] + r32[i]))
      );
      [...outs.flatMap((o) => [o.out, o.sum]), x, r, g, stored].forEach((v) => v.dispose());
      rows.push({
        anchor: name,
        product,
        M,
        N,
        K,
        perStep,
        composedMs,
        fusedMs,
        composedKernels: kernels[0],
        fusedKernels: kernels[1],
        composedRatio,
        fusedRatio,
        sumsExact,
      });
    }
  }
  return rows;
}

if (import.meta.main) {
  const script = "bench/matmul/add_rms_qkv.ts";
  const values = benchArgs(
    script,
    "Times a decode step's add + RMSNorm + projection (q/k/v, gate/up, classifier): the norm " +
      "dispatch and the product against the fused skinny matmul.",
    {
      small: { type: "boolean", help: "the 0.8M anchor only (a CPU fallback adapter)" },
      rounds: { type: "string", help: "timed rounds per way (default 20)" },
      json: { type: "string", help: "write the rows as JSON to this file" },
    },
  );
  const rounds = benchInt(script, values, "rounds", 20, { min: 1, max: 1000 });
  const rt = await initTensors();
  console.log(
    `device: ${rt.gpu.adapter.description || rt.gpu.adapter.device}` +
      (rt.gpu.isFallback ? " (CPU fallback adapter: not a GPU figure)" : ""),
  );
  const rows = await benchAddRms(values.small ? [ANCHORS[0].name] : undefined, rounds);
  const us = (ms: number) => (ms * 1e3).toFixed(1);
  const check = (q: number) => `${q.toFixed(3)}${q <= 1 ? "" : " FAIL"}`;
  for (const r of rows) {
    console.log(
      `${r.anchor.padEnd(5)} ${r.product.padEnd(6)} ${r.M}×${r.N}×${r.K} (${r.perStep} per ` +
        `decode step)${r.sumsExact ? "" : "  sum FAIL"}\n` +
        `  norm + matmul ${us(r.composedMs).padStart(8)} µs  [${r.composedKernels.join(" + ")}]` +
        `  err/bound ${check(r.composedRatio)}\n` +
        `  fused         ${us(r.fusedMs).padStart(8)} µs  [${r.fusedKernels.join(" + ")}]` +
        `  err/bound ${check(r.fusedRatio)}\n` +
        `  saved per decode step: ${us((r.composedMs - r.fusedMs) * r.perStep)} µs`,
    );
  }
  for (const a of new Set(rows.map((r) => r.anchor))) {
    const saved = rows.filter((r) => r.anchor === a)
      .reduce((s, r) => s + (r.composedMs - r.fusedMs) * r.perStep, 0);
    console.log(`${a}: saved per decode step, all three products: ${us(saved)} µs`);
  }
  if (values.json) Deno.writeTextFileSync(values.json, JSON.stringify({ rows }, null, 2) + "\n");
  if (rows.some((r) => !(r.composedRatio <= 1 && r.fusedRatio <= 1 && r.sumsExact))) {
    console.error("add_rms_qkv: some results were wrong (err/bound > 1 or a sum differs)");
    Deno.exit(1);
  }
}
