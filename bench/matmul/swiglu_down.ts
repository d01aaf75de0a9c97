/**
 * The MLP's gate and down projection of one decode step, two ways, per anchor at the sampling
 * batch (M = 64 rows, one token each): `swiglu + down`, what `swigluMatmul` composes (the
 * ops_swiglu_joined dispatch, then the down matmul: the skinny kernel on a GPU), against `fused`,
 * one skinny matmul reading A through the SwiGLU prologue (kernels/matmul_skinny_swiglu.wgsl).
 * Each is timed with GPU timestamps, interleaved as in main.ts (every round runs a pass of each,
 * in alternating order), and checked against the float64 reference afterwards.
 *
 * ```sh
 * deno run -A bench/matmul/swiglu_down.ts          # every anchor (GPU host)
 * deno run -A bench/matmul/swiglu_down.ts --small  # the 0.8M anchor (CPU fallback: runs, checks)
 * ```
 *
 * @module
 */
import { ops } from "../../src/autograd/mod.ts";
import { ANCHORS, GENERATE_BENCH } from "../../src/nn/anchors.ts";
import { initTensors, readAll, tensor } from "../../src/tensor/mod.ts";
import { Rng } from "../../src/util/rng.ts";
import { recordKernels, timeWays } from "./ab.ts";
import { benchArgs } from "../args.ts";

/** One anchor's figures. */
export interface SwigluDownRow {
  anchor: string;
  /** Rows, output columns (hidden size), intermediate size. */
  M: number;
  N: number;
  I: number;
  /** Products per decode step (layers). */
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
}

const U = 2 ** -24;

// Largest error / bound of `got` against (silu(g)·u)·wᵀ in float64 (w stored [N, I]); the bound
// is γ_{I+2}·Σ|a·w| plus the f32 gate's own error per term (tests/matmul_skinny_swiglu_test.ts).
function ratio(got: ArrayLike<number>, x: Float32Array, w: Float32Array, M: number, I: number) {
  const N = w.length / I;
  const gamma = ((I + 2) * U) / (1 - (I + 2) * U);
  const a = new Float64Array(I), slack = new Float64Array(I);
  let worst = 0;
  for (let m = 0; m < M; m++) {
    for (let k = 0; k < I; k++) {
      const g = x[m * 2 * I + k];
      a[k] = (g / (1 + Math.exp(-g))) * x[m * 2 * I + I + k];
      slack[k] = (16 + 2 * Math.abs(g)) * U;
    }
    for (let n = 0; n < N; n++) {
      let s = 0, abs = 0, gate = 0;
      for (let k = 0; k < I; k++) {
        const t = a[k] * w[n * I + k];
        s += t;
        abs += Math.abs(t);
        gate += Math.abs(t) * slack[k];
      }
      const e = Math.abs(got[m * N + n] - s) / (gamma * abs + gate + 1e-30);
      worst = Number.isNaN(e) ? Infinity : Math.max(worst, e);
    }
  }
  return worst;
}

/**
 * Times and checks both ways for each anchor named in `names` (default all).
 *
 * @example
 * ```ts
 * const [row] = await benchSwigluDown(["29M"]);
 * console.log(row.composedMs - row.fusedMs); // ms saved per down projection
 * ```
 */
export async function benchSwigluDown(
  names: readonly string[] = ANCHORS.map((a) => a.name),
  rounds = 20,
  warmupRounds = 3,
): Promise<SwigluDownRow[]> {
  const rt = await initTensors();
  const rows: SwigluDownRow[] = [];
  const M = GENERATE_BENCH.batch;
  for (const name of names) {
    const anchor = ANCHORS.find((a) => a.name === name);
    if (!anchor) throw new RangeError(`swiglu_down: unknown anchor '${name}'`);
    const { hidden: N, intermediate: I, layers } = anchor.config;
    const rng = new Rng(2026);
    const x32 = Float32Array.from({ length: M * 2 * I }, () => 2 * rng.normal());
    const w32 = Float32Array.from({ length: N * I }, () => rng.normal() / Math.sqrt(I));
    const x = tensor(x32, [M, 2 * I]);
    const stored = tensor(w32, [N, I]); // wDown as a model stores it, read transposed
    const w = ops.transpose(stored);
    const ways = [false, true].map((fused) => () => ops.swigluMatmul(x, w, { fused }));
    const [composedMs, fusedMs] = await timeWays(rt, ways, rounds, warmupRounds);
    // One product each, recorded apart to name its kernels, then read back and checked.
    const recorded = ways.map((way) => recordKernels(rt, way));
    const kernels = recorded.map((r) => r.kernels);
    const outs = recorded.map((r) => r.result);
    const got = await readAll(outs);
    const [composedRatio, fusedRatio] = got.map((g) => ratio(g as Float32Array, x32, w32, M, I));
    [...outs, x, stored].forEach((v) => v.dispose());
    rows.push({
      anchor: name,
      M,
      N,
      I,
      perStep: layers,
      composedMs,
      fusedMs,
      composedKernels: kernels[0],
      fusedKernels: kernels[1],
      composedRatio,
      fusedRatio,
    });
  }
  return rows;
}

if (import.meta.main) {
  const values = benchArgs(
    "bench/matmul/swiglu_down.ts",
    "Times a decode step's SwiGLU gate + down projection: two dispatches against the fused skinny matmul.",
    {
      small: { type: "boolean", help: "the 0.8M anchor only (a CPU fallback adapter)" },
      json: { type: "string", help: "write the rows as JSON to this file" },
    },
  );
  const rt = await initTensors();
  console.log(
    `device: ${rt.gpu.adapter.description || rt.gpu.adapter.device}` +
      (rt.gpu.isFallback ? " (CPU fallback adapter: not a GPU figure)" : ""),
  );
  const rows = await benchSwigluDown(values.small ? [ANCHORS[0].name] : undefined);
  for (const r of rows) {
    const us = (ms: number) => (ms * 1e3).toFixed(1);
    const check = (q: number) => `${q.toFixed(3)}${q <= 1 ? "" : " FAIL"}`;
    console.log(
      `${r.anchor.padEnd(5)} swiglu·down ${r.M}×${r.N}×${r.I} (${r.perStep} per decode step)\n` +
        `  swiglu + down ${us(r.composedMs).padStart(8)} µs  [${r.composedKernels.join(" + ")}]` +
        `  err/bound ${check(r.composedRatio)}\n` +
        `  fused         ${us(r.fusedMs).padStart(8)} µs  [${r.fusedKernels.join(" + ")}]` +
        `  err/bound ${check(r.fusedRatio)}\n` +
        `  saved per decode step: ${us((r.composedMs - r.fusedMs) * r.perStep)} µs`,
    );
  }
  if (values.json) Deno.writeTextFileSync(values.json, JSON.stringify({ rows }, null, 2) + "\n");
  if (rows.some((r) => !(r.composedRatio <= 1 && r.fusedRatio <= 1))) {
    console.error("swiglu_down: some results were wrong (err/bound > 1)");
    Deno.exit(1);
  }
}
