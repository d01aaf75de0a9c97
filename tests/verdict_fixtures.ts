// Shared pieces of the verdict tests (tests/verdict_*_test.ts): today's defaults as the rules see
// them, input wrappers, the "cannot decide" assertion, and synthetic bench files built in the
// writers' own record types, used by the rule tests and by the end-to-end script test.
import assert from "node:assert/strict";
import { ANCHORS } from "../src/nn/anchors.ts";
import { SKINNY_COST } from "../src/tensor/matmul/skinny.ts";
import type { TensorBenchRow } from "../bench/tensor/main.ts";
import type { MatmulBenchRow } from "../bench/matmul/main.ts";
import { DECODE_VERSIONS, type DecodeShape, decodeShapes } from "../bench/matmul/decode.ts";
import type { SwigluDownRow } from "../bench/matmul/swiglu_down.ts";
import type { AddRmsRow } from "../bench/matmul/add_rms_qkv.ts";
import type { TransformerBenchRow } from "../bench/nn/main.ts";
import { type ObrsBenchResult, type ObrsBenchRow } from "../bench/obrs/main.ts";
import type { Decision, Input } from "../bench/device/decision.ts";
import type { CurrentDefaults } from "../bench/device/defaults.ts";
import type {
  AddRmsFile,
  MatmulDecodeFile,
  ObrsSweep,
  SwigluDownFile,
  TensorFile,
  TransformerFile,
} from "../bench/device/files.ts";
import { obrsFromJson } from "../bench/device/files.ts";
import { ADD_RMS_PRODUCTS, ruleAddRms } from "../bench/device/rules_add_rms.ts";

export const CUR: CurrentDefaults = {
  fusedBlocks: 256,
  autoFlashMaxWork: Number.POSITIVE_INFINITY,
  addRmsFusedMaxK: Number.POSITIVE_INFINITY,
  gradSumsSplitMaxBytes: 4 * 2 ** 20,
  skinnyMaxM: 64,
  reduceUs: SKINNY_COST.reduceUs,
  swigluPerFma: SKINNY_COST.swigluPerFma,
  topkGroups: 4,
  topkSegments: 1,
  topkUniformCount: false,
  lseLoads: 4,
};

export const data = <T>(path: string, d: T): Input<T> => ({ path, data: d });
export const absent = <T>(path: string): Input<T> => ({ path, problem: "not found" });

export function assertCannot(d: Decision, mentions: string) {
  assert.equal(d.status, "cannot-decide", d.decision);
  assert.deepEqual(d.edits, []);
  assert.ok(d.missing.join(" ").includes(mentions), `'${d.missing}' should mention ${mentions}`);
}

// ---- bench/tensor (the op names of bench/tensor/main.ts, in its order) ----
export const TENSOR_OPS = [
  "silu forward (vec4)",
  "add same shape (vec4)",
  "add row bias (broadcast)",
  "mul by scalar (affine)",
  "sum over last axis",
  "sum over rows (bias grad)",
  "softmax forward",
  "rmsNorm forward",
  "rmsNorm backward (dx, dw)",
  "layerNorm forward",
  "crossEntropy forward",
  "AdamW step (+ grad norm)",
  "max over last axis",
  "logSoftmax forward",
  "softmax backward",
  "layerNorm backward (dx, dw, db)",
  "crossEntropy backward",
];

export function tensorFile(ofCopy: (op: string) => number, ops = TENSOR_OPS): TensorFile {
  const row = (op: string, f: number): TensorBenchRow => ({
    op,
    shape: [4096, 4096],
    ms: 0.05 / f,
    bytes: 8 * 4096 * 4096,
    gbPerSecond: 2700 * f,
    ofCopy: f,
    method: "gpu-timestamps",
  });
  return [row("copy (yardstick)", 1), ...ops.map((op) => row(op, ofCopy(op)))];
}

// ---- bench/matmul --decode ----
export const SHAPES = decodeShapes();
export function decodeFile(msOf: (v: string, s: DecodeShape) => number): MatmulDecodeFile {
  const rows: MatmulBenchRow[] = [];
  for (const s of SHAPES) {
    const run = { busy: 0.95, roundFactors: [1, 1.01, 0.99], window: [0, 1] as [number, number] };
    for (const version of DECODE_VERSIONS) {
      const ms = msOf(version, s);
      rows.push({
        version,
        M: s.M,
        N: s.N,
        K: s.K,
        layout: "NT",
        batch: 1,
        ms,
        minMs: ms,
        tflops: (2 * s.M * s.N * s.K) / (ms * 1e9),
        perPass: 64,
        maxRatio: 0.1,
        run,
      });
    }
  }
  return {
    device: "H100",
    isFallback: false,
    method: "gpu-timestamps",
    command: "x",
    rows,
    decodeShapes: SHAPES,
    clockSamples: [],
  };
}

// v14 and auto (the same dispatches) at 10 µs, tiles at `tiles`, the variants at `other` (µs).
export const decodeMs =
  (tiles: (s: DecodeShape) => number, other = (_v: string, _s: DecodeShape) => 10) =>
  (v: string, s: DecodeShape) =>
    1e-3 * (v === "tiles" ? tiles(s) : v === "v14" || v === "auto" ? 10 : other(v, s));

// ---- bench/matmul/swiglu_down ----
export function swigluFile(
  fusedOverComposed: (anchor: string) => number,
  ratio = 0.2,
): SwigluDownFile {
  return {
    rows: ANCHORS.map((a): SwigluDownRow => ({
      anchor: a.name,
      M: 64,
      N: a.config.hidden,
      I: a.config.intermediate,
      perStep: a.config.layers,
      composedMs: 0.02,
      fusedMs: 0.02 * fusedOverComposed(a.name),
      composedKernels: ["ops_swiglu_joined_vec4", "matmul_skinny"],
      fusedKernels: ["matmul_skinny_swiglu"],
      composedRatio: ratio,
      fusedRatio: ratio,
    })),
  };
}

// ---- bench/matmul/add_rms_qkv ----
// Each anchor's three products, composed at 20 µs (× their count per step); fused at
// `fusedOverComposed(anchor, product)` of that.
export function addRmsFile(
  fusedOverComposed: (anchor: string, product: string) => number,
  wrong: Partial<AddRmsRow> = {},
): AddRmsFile {
  return {
    rows: ANCHORS.flatMap((a) =>
      ADD_RMS_PRODUCTS.map((product): AddRmsRow => ({
        anchor: a.name,
        product,
        M: 64,
        N: product === "head" ? a.config.vocabSize : 3 * a.config.hidden,
        K: a.config.hidden,
        perStep: product === "head" ? 1 : a.config.layers,
        composedMs: 0.02,
        fusedMs: 0.02 * fusedOverComposed(a.name, product),
        composedKernels: ["ops_norm", "matmul_skinny"],
        fusedKernels: ["matmul_skinny_addRms"],
        composedRatio: 0.1,
        fusedRatio: 0.1,
        sumsExact: true,
        ...(a.name === "5M" && product === "head" ? wrong : {}),
      }))
    ),
  };
}

export const addRms = (f: (anchor: string, product: string) => number, cur = CUR) =>
  ruleAddRms(data("bench/add_rms_qkv.json", addRmsFile(f)), cur);
export const [K08, K5, K29] = ANCHORS.map((a) => a.config.hidden);

// ---- bench/nn/main.ts: attention and deferral ----
export function nnFile(attention: string, gpuMs: (anchor: string) => number): TransformerFile {
  return {
    adapter: "H100",
    fallback: false,
    small: false,
    attention,
    rows: ANCHORS.map((a): TransformerBenchRow => ({
      anchor: a.name,
      params: 1,
      B: a.B,
      T: a.T,
      stepGpuMs: gpuMs(a.name),
      method: "gpu-timestamps",
      stepWallMs: gpuMs(a.name) + 1,
      stepHostMs: 1,
      trainTokensPerS: 1,
      trainGflops: 1,
      genBatch: 64,
      genTokens: 128,
      genTokensPerS: 1,
    })),
  };
}

export const BASE: Record<string, number> = { "0.8M": 4, "5M": 15, "29M": 60 };

// ---- bench/obrs sweep ----
export function obrsResult(
  k: number,
  cases: Record<string, number>,
  wrong: string[] = [],
): ObrsBenchResult {
  const results = Object.entries(cases).map(([id, ms]): ObrsBenchRow => ({
    id,
    name: `${
      id.startsWith("jackpot")
        ? "jackpot weights"
        : id.startsWith("fused")
        ? "fused row pass"
        : id.startsWith("lse")
        ? "log-sum-exp"
        : "top-k"
    } ${id} (note)`,
    medianMs: ms,
    bytesRead: 2.49e9,
    tbPerSecond: 2.49 / ms,
    limitMs: 0.82,
  }));
  return {
    adapter: "H100",
    fallback: false,
    rows: 4096,
    vocab: 151936,
    k,
    copyGbPerSecond: 3000,
    results,
    skipped: [],
    wrong,
  };
}

export function sweep(
  k20: Record<string, number>,
  k1: Record<string, number>,
  k64: Record<string, number>,
  wrong: string[] = [],
): ObrsSweep {
  const s: ObrsSweep = { cases: [], wrong: [], files: ["x"], notes: [] };
  for (const [k, c] of [[20, k20], [1, k1], [64, k64]] as const) {
    const part = obrsFromJson([obrsResult(k, c, k === 20 ? wrong : [])], `obrs_k${k}.json`);
    s.cases.push(...part.cases);
    s.wrong.push(...part.wrong);
  }
  return s;
}

export const FEW = { "fused": 2.3, "fused-g8": 2.2, "fused-s4": 2.4, "fused-g8-uc": 2.3 };
