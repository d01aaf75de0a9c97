// bench/device/verdict.ts: each decision rule on synthetic bench files built in the writers' own
// record types (a clear win, a clear loss, a tie or borderline, a missing file), the file finder
// (folders, nested .tar.gz, older formats), and the script end to end: synthetic files, the
// 2026-11-23 H100 results (older formats: "cannot decide", never a stack trace), and real output
// of the bench scripts' --small runs on this CPU adapter.
import assert from "node:assert/strict";
import { ANCHORS } from "../src/nn/anchors.ts";
import { chooseSkinnyTiling, SKINNY_COST } from "../src/tensor/matmul/skinny.ts";
import type { ProfileRow } from "../src/gpu/profile.ts";
import type { TensorBenchRow } from "../bench/tensor/main.ts";
import type { MatmulBenchRow } from "../bench/matmul/main.ts";
import { DECODE_VERSIONS, type DecodeShape, decodeShapes } from "../bench/matmul/decode.ts";
import type { SwigluDownRow } from "../bench/matmul/swiglu_down.ts";
import type { AddRmsRow } from "../bench/matmul/add_rms_qkv.ts";
import type { TransformerBenchRow } from "../bench/nn/main.ts";
import type { AnchorProfile } from "../bench/nn/profile.ts";
import { formatRow, type ObrsBenchResult, type ObrsBenchRow } from "../bench/obrs/main.ts";
import { FUSED_VARIANTS, TOPK_VERSIONS } from "../bench/obrs/versions.ts";
import type { Decision, Input } from "../bench/device/decision.ts";
import type { CurrentDefaults } from "../bench/device/defaults.ts";
import type {
  AddRmsFile,
  MatmulDecodeFile,
  ObrsSweep,
  ProfileFile,
  SwigluDownFile,
  TensorFile,
  TransformerFile,
} from "../bench/device/files.ts";
import { obrsFromJson, parseObrsLog } from "../bench/device/files.ts";
import { collectFiles, loadInputs } from "../bench/device/inputs.ts";
import { ruleProfile, ruleRowKernels, ruleSwigluDown } from "../bench/device/rules.ts";
import { attentionWork, ruleAttention, ruleDefer } from "../bench/device/rules_nn.ts";
import { ADD_RMS_PRODUCTS, ruleAddRms } from "../bench/device/rules_add_rms.ts";
import {
  ruleSkinnyDecode,
  ruleSkinnyReduce,
  ruleSkinnyVariants,
  splitBreakEvenUs,
} from "../bench/device/rules_skinny.ts";
import {
  ruleObrsControl,
  ruleObrsFused,
  ruleObrsLse,
  ruleObrsWrong,
} from "../bench/device/rules_obrs.ts";
import { runScript } from "./script_util.ts";

const CUR: CurrentDefaults = {
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
const data = <T>(path: string, d: T): Input<T> => ({ path, data: d });
const absent = <T>(path: string): Input<T> => ({ path, problem: "not found" });

function assertCannot(d: Decision, mentions: string) {
  assert.equal(d.status, "cannot-decide", d.decision);
  assert.deepEqual(d.edits, []);
  assert.ok(d.missing.join(" ").includes(mentions), `'${d.missing}' should mention ${mentions}`);
}

// ---- bench/tensor (the op names of bench/tensor/main.ts, in its order) ----
const TENSOR_OPS = [
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
function tensorFile(ofCopy: (op: string) => number, ops = TENSOR_OPS): TensorFile {
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

Deno.test("row kernels: all ≥ 80% no change; a norm backward short → FUSED_BLOCKS doubles", () => {
  const win = ruleRowKernels(data("t.json", tensorFile(() => 0.9)), CUR);
  assert.equal(win.status, "no-change");
  assert.equal(win.figures.length, TENSOR_OPS.length);
  const loss = ruleRowKernels(
    data(
      "t.json",
      tensorFile((
        op,
      ) => (op.startsWith("rmsNorm backward") ? 0.44 : op === "softmax forward" ? 0.6 : 0.95)),
    ),
    CUR,
  );
  assert.equal(loss.status, "change");
  assert.deepEqual(loss.edits, [{
    file: "src/autograd/norm.ts",
    constant: "FUSED_BLOCKS",
    from: "256",
    to: "512",
  }]);
  assert.match(
    loss.decision,
    /softmax forward: suspect register spills in the register tile .*K = 4/,
  );
  assert.equal(loss.figures.filter((f) => f.note?.startsWith("fail")).length, 2);
  // a short row kernel alone asks for no edit, only the hint
  const rowOnly = ruleRowKernels(
    data("t.json", tensorFile((op) => (op === "softmax backward" ? 0.7 : 0.9))),
    CUR,
  );
  assert.equal(rowOnly.status, "no-change");
  assert.match(rowOnly.decision, /target missed.*softmax backward 70%/);
});

Deno.test("row kernels: borderline figures pass or fail at 80% with a rerun caution", () => {
  const d = ruleRowKernels(
    data(
      "t.json",
      tensorFile((
        op,
      ) => (op === "layerNorm forward" ? 0.805 : op === "rmsNorm backward (dx, dw)" ? 0.795 : 0.9)),
    ),
    CUR,
  );
  assert.equal(d.status, "change"); // 79.5% fails: the edit for the fused backward
  assert.match(d.cautions.join(), /within 2 points.*(?=.*layerNorm forward)(?=.*rmsNorm backward)/);
  assert.equal(
    d.figures.find((f) => f.name === "layerNorm forward")!.note!.split(";")[0],
    "pass (borderline)",
  );
});

Deno.test("row kernels: missing, older or wall-clock files cannot decide", () => {
  assertCannot(ruleRowKernels(absent("bench/tensor.json"), CUR), "bench/tensor.json");
  assertCannot(
    ruleRowKernels(data("old.json", tensorFile(() => 0.9, TENSOR_OPS.slice(0, 12))), CUR),
    "predates",
  );
  const wall = tensorFile(() => 0.9).map((r) => ({ ...r, method: "wall-clock" }));
  assertCannot(ruleRowKernels(data("w.json", wall), CUR), "wall-clock");
});

// ---- bench/matmul --decode ----
const SHAPES = decodeShapes();
function decodeFile(msOf: (v: string, s: DecodeShape) => number): MatmulDecodeFile {
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
const decodeMs =
  (tiles: (s: DecodeShape) => number, other = (_v: string, _s: DecodeShape) => 10) =>
  (v: string, s: DecodeShape) =>
    1e-3 * (v === "tiles" ? tiles(s) : v === "v14" || v === "auto" ? 10 : other(v, s));

Deno.test("skinny decode: kept when v14 wins everywhere; off when tiles wins at 29M", () => {
  const win = ruleSkinnyDecode(data("d.json", decodeFile(decodeMs(() => 20))), CUR);
  assert.equal(win.status, "no-change");
  assert.equal(win.figures.length, 6);
  const lose29 = ruleSkinnyDecode(
    data("d.json", decodeFile(decodeMs((s) => (s.anchor === "29M" ? 5 : 20)))),
    CUR,
  );
  assert.equal(lose29.status, "change");
  assert.deepEqual(lose29.edits, [{
    file: "src/tensor/matmul/skinny.ts",
    constant: "SKINNY_MAX_M",
    from: "64",
    to: "0",
  }]);
  const lose08 = ruleSkinnyDecode(
    data("d.json", decodeFile(decodeMs((s) => (s.anchor === "0.8M" ? 5 : 20)))),
    CUR,
  );
  assert.equal(lose08.status, "no-change");
  assert.match(lose08.decision, /not faster than tiles at 0\.8M .*per-shape grid/);
  // a tie is not "below": v14 must be faster at every anchor
  const tie = ruleSkinnyDecode(
    data("d.json", decodeFile(decodeMs((s) => (s.anchor === "29M" ? 10 : 20)))),
    CUR,
  );
  assert.equal(tie.status, "change");
});

Deno.test("skinny decode: an untrustworthy or missing run cannot decide", () => {
  assertCannot(ruleSkinnyDecode(absent("bench/matmul_decode.json"), CUR), "matmul_decode");
  const auto = decodeFile((
    v,
    s,
  ) => (v === "auto" && s.role === "down" ? 0.012 : v === "tiles" ? 0.02 : 0.01));
  assertCannot(ruleSkinnyDecode(data("d.json", auto), CUR), "auto +20% from v14");
  const wrong = decodeFile(decodeMs(() => 20));
  wrong.rows[3].maxRatio = 1.5;
  assertCannot(ruleSkinnyDecode(data("d.json", wrong), CUR), "err/bound 1.5");
  const idle = decodeFile(decodeMs(() => 20));
  idle.rows[0].run = { busy: 0.5, roundFactors: [1, 1], window: [0, 1] };
  assertCannot(ruleSkinnyReduce(data("d.json", idle), CUR), "busy 50%");
});

const splitShapes = SHAPES.filter((s) => chooseSkinnyTiling(s.M, s.N, s.K).kSplits > 1);

Deno.test("skinny reduce: the break-even agrees with chooseSkinnyTiling", () => {
  assert.ok(splitShapes.length >= 2, "the anchors have split decode products");
  for (const s of SHAPES) {
    const even = splitBreakEvenUs(s.M, s.N, s.K);
    const splits = chooseSkinnyTiling(s.M, s.N, s.K).kSplits > 1;
    // splitting is chosen now exactly when the break-even lies above the current reduceUs
    assert.equal(even > SKINNY_COST.reduceUs, splits, `${s.anchor} ${s.role}: ${even}`);
  }
});

Deno.test("skinny reduce: v15 winning raises reduceUs past every winner's break-even", () => {
  const win15 = decodeFile(
    decodeMs(() => 20, (v, s) => (v === "v15" && splitShapes.includes(s) ? 7 : 10)),
  );
  const d = ruleSkinnyReduce(data("d.json", win15), CUR);
  assert.equal(d.status, "change");
  const to = Number(d.edits[0].to);
  const evens = splitShapes.map((s) => splitBreakEvenUs(s.M, s.N, s.K));
  assert.ok(evens.every((e) => to >= e), `${to} ≥ ${evens}`);
  assert.ok(to - 0.5 < Math.max(...evens), "the smallest half-µs that does");
  assert.equal(d.edits[0].from, String(SKINNY_COST.reduceUs));
  // 8% is inside the 10% margin; equal figures decide nothing either
  const near = decodeFile(
    decodeMs(() => 20, (v, s) => (v === "v15" && splitShapes.includes(s) ? 9.2 : 10)),
  );
  assert.equal(ruleSkinnyReduce(data("d.json", near), CUR).status, "no-change");
  // v15 wins where splitting is worth most but loses where it is worth least: no single value fits
  const byEven = [...splitShapes].sort((a, b) =>
    splitBreakEvenUs(a.M, a.N, a.K) - splitBreakEvenUs(b.M, b.N, b.K)
  );
  const conflict = decodeFile(
    decodeMs(
      () => 20,
      (v, s) => v !== "v15" ? 10 : s === byEven.at(-1) ? 7 : s === byEven[0] ? 14 : 10,
    ),
  );
  assertCannot(ruleSkinnyReduce(data("d.json", conflict), CUR), "no single reduceUs fits");
  assertCannot(ruleSkinnyReduce(absent("bench/matmul_decode.json"), CUR), "matmul_decode");
});

Deno.test("skinny reduce: v14's tilings as the run recorded them, recomputed only when absent", () => {
  const win15 = (v: string, s: DecodeShape) =>
    v === "v15" && chooseSkinnyTiling(s.M, s.N, s.K).kSplits > 1 ? 7 : 10;
  const recorded = (tiling: (s: DecodeShape) => DecodeShape["v14Tiling"]) => {
    const f = decodeFile(decodeMs(() => 20, win15));
    f.decodeShapes = SHAPES.map((s) => ({ ...s, v14Tiling: tiling(s) }));
    return ruleSkinnyReduce(data("d.json", f), CUR);
  };
  // recorded as this checkout chooses: the same verdict, no recomputation caution
  const same = recorded((s) => chooseSkinnyTiling(s.M, s.N, s.K));
  const old = ruleSkinnyReduce(data("d.json", decodeFile(decodeMs(() => 20, win15))), CUR);
  assert.equal(same.status, "change");
  assert.deepEqual(same.edits, old.edits);
  assert.deepEqual(same.cautions, []);
  assert.match(old.cautions.join(), /recomputed .* for every shape/);
  // the run did not split them (an older SKINNY_COST): v15 = v14 there is a control, not a verdict
  const unsplit = recorded((s) => ({ ...chooseSkinnyTiling(s.M, s.N, s.K), kSplits: 1 }));
  assert.equal(unsplit.status, "no-change", unsplit.decision);
  assert.match(unsplit.cautions.join(), /SKINNY_COST has changed since the run/);
  assert.match(unsplit.cautions.join(), /v14 does not split, yet v15 is −30%/);
  // the run split a shape this checkout does not: v15 winning there moves nothing
  const extra = SHAPES.find((s) => chooseSkinnyTiling(s.M, s.N, s.K).kSplits === 1)!;
  const f = decodeFile(decodeMs(() => 20, (v, s) => (v === "v15" && s === extra ? 7 : 10)));
  f.decodeShapes = SHAPES.map((s) => ({
    ...s,
    v14Tiling: { ...chooseSkinnyTiling(s.M, s.N, s.K), ...(s === extra ? { kSplits: 2 } : {}) },
  }));
  const settled = ruleSkinnyReduce(data("d.json", f), CUR);
  assert.equal(settled.status, "no-change", settled.decision);
  assert.match(
    settled.decision,
    new RegExp(`v15 wins at ${extra.anchor} ${extra.role}.*no longer splits`),
  );
});

Deno.test("skinny variants: v18 winning on most shapes turns PREFETCH off; v17 on a few does nothing", () => {
  const v18 = ruleSkinnyVariants(
    data("d.json", decodeFile(decodeMs(() => 20, (v) => (v === "v18" ? 8 : 10)))),
  );
  assert.equal(v18.status, "change");
  assert.deepEqual(v18.edits.map((e) => [e.constant, e.to]), [[
    "override PREFETCH default",
    "false",
  ]]);
  const few = ruleSkinnyVariants(
    data(
      "d.json",
      decodeFile(decodeMs(() => 20, (v, s) => (v === "v17" && s.anchor === "29M" ? 8 : 10))),
    ),
  );
  assert.equal(few.status, "no-change");
});

// ---- bench/matmul/swiglu_down ----
function swigluFile(fusedOverComposed: (anchor: string) => number, ratio = 0.2): SwigluDownFile {
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

Deno.test("swiglu_down: fused faster stays; slower at 29M refuses I ≥ 1536; slower everywhere refuses all", () => {
  assert.equal(ruleSwigluDown(data("s.json", swigluFile(() => 0.7)), CUR).status, "no-change");
  const at29 = ruleSwigluDown(data("s.json", swigluFile((a) => (a === "29M" ? 1.3 : 0.8))), CUR);
  assert.equal(at29.status, "change");
  assert.equal(at29.edits[0].file, "src/autograd/swiglu_matmul.ts");
  assert.match(at29.edits[0].to, new RegExp(`I >= ${ANCHORS[2].config.intermediate}`));
  assert.match(at29.decision, /29M \(\+30%\)/);
  const all = ruleSwigluDown(data("s.json", swigluFile(() => 1.5)), CUR);
  assert.match(all.edits[0].to, /refuse every shape/);
  // within 5% is a tie: fused (one dispatch fewer) stays
  assert.equal(ruleSwigluDown(data("s.json", swigluFile(() => 1.04)), CUR).status, "no-change");
});

Deno.test("swiglu_down: wrong results or a missing file cannot decide", () => {
  assertCannot(ruleSwigluDown(data("s.json", swigluFile(() => 0.7, 2)), CUR), "wrong results");
  assertCannot(ruleSwigluDown(absent("bench/swiglu_down.json"), CUR), "swiglu_down");
});

// ---- bench/matmul/add_rms_qkv ----
// Each anchor's three products, composed at 20 µs (× their count per step); fused at
// `fusedOverComposed(anchor, product)` of that.
function addRmsFile(
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
const addRms = (f: (anchor: string, product: string) => number, cur = CUR) =>
  ruleAddRms(data("bench/add_rms_qkv.json", addRmsFile(f)), cur);
const [K08, K5, K29] = ANCHORS.map((a) => a.config.hidden);

Deno.test("add-rms: a clear win keeps fused; every anchor losing sets the bound to 0", () => {
  const win = addRms(() => 0.6);
  assert.equal(win.status, "no-change", win.decision);
  assert.deepEqual(win.edits, []);
  assert.match(win.decision, /ADD_RMS_FUSED_MAX_K stays Number\.POSITIVE_INFINITY/);
  // each anchor's sum: 40% of the composed time saved
  const saved = win.figures.filter((f) => f.name.endsWith("saved per decode step"));
  assert.equal(saved.length, ANCHORS.length);
  for (const a of ANCHORS) {
    const steps = 2 * a.config.layers + 1;
    const f = saved.find((x) => x.name.startsWith(`${a.name} `))!;
    assert.ok(Math.abs(f.value - steps * 20 * 0.4) < 1e-9, `${a.name}: ${f.value}`);
  }
  const all = addRms(() => 1.3);
  assert.equal(all.status, "change");
  assert.deepEqual(all.edits, [{
    file: "src/autograd/add_rms_matmul.ts",
    constant: "ADD_RMS_FUSED_MAX_K",
    from: "Number.POSITIVE_INFINITY",
    to: "0",
  }]);
  assert.match(all.decision, /loses at every anchor.*norm dispatch \+ matmul/);
  // the same verdict with 0 already in the source asks for no edit
  assert.equal(addRms(() => 1.3, { ...CUR, addRmsFusedMaxK: 0 }).status, "no-change");
});

Deno.test("add-rms: the sum over the products decides; within 5% fused stays", () => {
  // the classifier (once per step) loses badly, but q/k/v and gate/up (per layer) win more
  const mixed = addRms((_a, p) => (p === "head" ? 1.9 : 0.8));
  assert.equal(mixed.status, "no-change", mixed.decision);
  // 4% slower over the step is a tie: fused stays, with a caution
  const tie = addRms(() => 1.04);
  assert.equal(tie.status, "no-change", tie.decision);
  assert.match(tie.cautions.join(), /within 5%: 0\.8M, 5M, 29M/);
  // 6% slower loses
  assert.equal(addRms(() => 1.06).status, "change");
});

Deno.test("add-rms: only 29M losing refuses K > 5M's; 5M and 29M losing, K > 0.8M's", () => {
  const at29 = addRms((a) => (a === "29M" ? 1.2 : 0.7));
  assert.equal(at29.status, "change", at29.decision);
  assert.deepEqual(at29.edits.map((e) => [e.from, e.to]), [["Number.POSITIVE_INFINITY", `${K5}`]]);
  assert.match(at29.decision, new RegExp(`compose for K > ${K5} .*${K5} to ${K29 - 1}`));
  const from5 = addRms((a) => (a === "0.8M" ? 1.0 : 1.2));
  assert.deepEqual(from5.edits.map((e) => e.to), [`${K08}`]);
  // a bound already there stays
  const kept = addRms((a) => (a === "29M" ? 1.2 : 0.7), { ...CUR, addRmsFusedMaxK: K5 });
  assert.equal(kept.status, "no-change");
  assert.match(kept.decision, new RegExp(`stays ${K5}`));
  // a bound that now refuses a winner is raised
  const raise = addRms(() => 0.7, { ...CUR, addRmsFusedMaxK: K08 });
  assert.deepEqual(raise.edits.map((e) => [e.from, e.to]), [[
    `${K08}`,
    "Number.POSITIVE_INFINITY",
  ]]);
});

Deno.test("add-rms: losers and winners interleaved in K: no single bound", () => {
  assertCannot(addRms((a) => (a === "5M" ? 1.3 : 0.7)), "no single bound fits");
  assertCannot(addRms((a) => (a === "0.8M" ? 1.3 : 0.7)), "no single bound fits");
});

Deno.test("add-rms: wrong results, a missing file or product cannot decide cleanly", () => {
  const bad = (w: Partial<AddRmsRow>) => ruleAddRms(data("a.json", addRmsFile(() => 0.7, w)), CUR);
  assertCannot(bad({ fusedRatio: 1.5 }), "5M head (fused err/bound 1.5): a bug to fix first");
  assertCannot(bad({ composedRatio: NaN }), "composed err/bound NaN");
  assertCannot(bad({ sumsExact: false }), "sum not bit-exact");
  assertCannot(
    ruleAddRms({
      path: "bench/add_rms_qkv.json",
      problem: "not found (written by the defer stage)",
    }, CUR),
    "bench/add_rms_qkv.json: not found (written by the defer stage)",
  );
  // an anchor without all three products is left out, said so
  const file = addRmsFile((a) => (a === "29M" ? 1.3 : 0.7));
  file.rows = file.rows.filter((r) => !(r.anchor === "29M" && r.product === "head"));
  const partial = ruleAddRms(data("a.json", file), CUR);
  assert.equal(partial.status, "no-change");
  assert.match(partial.cautions.join(), /left out, not all three products: 29M \(no head\)/);
});

// ---- bench/nn/main.ts: attention and deferral ----
function nnFile(attention: string, gpuMs: (anchor: string) => number): TransformerFile {
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
const BASE: Record<string, number> = { "0.8M": 4, "5M": 15, "29M": 60 };

Deno.test("attention: v2 winning keeps ∞; composed winning at 29M bounds auto between 5M and 29M", () => {
  const comp = (f: (a: string) => number) =>
    data("c.json", nnFile("composed", (a) => BASE[a] * f(a)));
  const auto = data("a.json", nnFile("auto", (a) => BASE[a]));
  const miss = absent<never>("bench/attention.json"); // optional: it only adds figures
  const win = ruleAttention(comp(() => 1.5), auto, miss, CUR);
  assert.equal(win.status, "no-change");
  const lose = ruleAttention(comp((a) => (a === "29M" ? 0.8 : 1.5)), auto, miss, CUR);
  assert.equal(lose.status, "change");
  const to = lose.edits[0].to;
  assert.equal(lose.edits[0].from, "Number.POSITIVE_INFINITY");
  const bound = 2 ** Number(/^2 \*\* (\d+)$/.exec(to)![1]);
  const [w5, w29] = [ANCHORS[1], ANCHORS[2]].map((a) => attentionWork(a.name, a.B, a.T));
  assert.ok(w5 <= bound && bound < w29, `${w5} ≤ ${to} < ${w29}`);
  // within 3%: a tie, v2 stays
  assert.equal(ruleAttention(comp(() => 0.98), auto, miss, CUR).status, "no-change");
  // composed wins at the smallest anchor only: no upper bound expresses it
  assertCannot(
    ruleAttention(comp((a) => (a === "0.8M" ? 0.5 : 1.5)), auto, miss, CUR),
    "no single bound",
  );
  assertCannot(
    ruleAttention(absent("bench/transformer_composed.json"), auto, miss, CUR),
    "transformer_composed",
  );
  assertCannot(
    ruleAttention(data("x.json", nnFile("fused", () => 1)), auto, miss, CUR),
    "ran --attention fused",
  );
});

Deno.test("deferral: the lowest sum wins beyond 2%; 0 at every anchor turns split deferral off", () => {
  const run = (name: string, f: (a: string) => number) =>
    data(name, nnFile("auto", (a) => BASE[a] * f(a)));
  const dflt = run("bench/transformer_auto.json", () => 1);
  const keep = ruleDefer(run("d0", () => 1.1), dflt, run("d64", () => 1.05), CUR);
  assert.equal(keep.status, "no-change");
  const zero = ruleDefer(run("d0", () => 0.9), dflt, run("d64", () => 1.05), CUR);
  assert.equal(zero.status, "change");
  assert.deepEqual(zero.edits[0], {
    file: "src/autograd/grad_sums.ts",
    constant: "GRAD_SUMS_SPLIT_MAX_BYTES",
    from: "4 * 2 ** 20",
    to: "0",
  });
  assert.match(zero.decision, /off by default/);
  const big = ruleDefer(
    run("d0", (a) => (a === "29M" ? 1.2 : 0.9)),
    dflt,
    run("d64", (a) => (a === "29M" ? 0.8 : 1)),
    CUR,
  );
  assert.equal(big.edits[0].to, "64 * 2 ** 20");
  assert.doesNotMatch(big.decision, /off by default/);
  assert.equal(
    ruleDefer(run("d0", () => 0.99), dflt, run("d64", () => 1), CUR).status,
    "no-change",
  );
  assertCannot(
    ruleDefer(absent("bench/transformer_defer0.json"), dflt, run("d64", () => 1), CUR),
    "defer0",
  );
});

Deno.test("deferral: the recorded --defer-split-mb wins over the file name; 'off' or a repeat cannot decide", () => {
  const run = (name: string, mb: number | "off" | undefined, f: (a: string) => number) =>
    data(name, { ...nnFile("auto", (a) => BASE[a] * f(a)), deferSplitMb: mb });
  const dflt = run("bench/transformer_auto.json", 4, () => 1);
  // the files say otherwise than their names: the one named defer0 ran 64 MiB, and won
  const swapped = ruleDefer(
    run("bench/transformer_defer0.json", 64, () => 0.9),
    dflt,
    run("bench/transformer_defer64.json", 0, () => 1.05),
    CUR,
  );
  assert.equal(swapped.status, "change", swapped.decision);
  assert.equal(swapped.edits[0].to, "64 * 2 ** 20");
  assert.deepEqual(swapped.cautions, []);
  assert.ok(
    swapped.figures.some((f) =>
      f.name === "29M training step, 64 MiB" && f.file.includes("defer0")
    ),
  );
  // the same files without the field: read from the names (0 wins), with the caution
  const guessed = ruleDefer(
    run("bench/transformer_defer0.json", undefined, () => 0.9),
    dflt,
    run("bench/transformer_defer64.json", undefined, () => 1.05),
    CUR,
  );
  assert.equal(guessed.edits[0].to, "0");
  assert.match(
    guessed.cautions.join(),
    /no recorded --defer-split-mb .* in .*transformer_defer0\.json, .*transformer_defer64\.json: /,
  );
  assertCannot(
    ruleDefer(run("d0", "off", () => 0.9), dflt, run("d64", 64, () => 1), CUR),
    "d0 ran --defer-split-mb off",
  );
  assertCannot(
    ruleDefer(run("d0", 4, () => 0.9), dflt, run("d64", 64, () => 1), CUR),
    "two runs at 4 MiB",
  );
  assertCannot(
    ruleDefer(run("d0", 0, () => 0.9), run("a", 8, () => 1), run("d64", 64, () => 1), CUR),
    "no run at the default 4 MiB",
  );
});

// ---- bench/obrs sweep ----
function obrsResult(
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
function sweep(
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
const K20 = {
  "v9": 1.6,
  "v10": 1.6,
  "lse-v1": 1.5,
  "lse-v2": 1.2,
  "lse-v2-l2": 1.19,
  "fused": 1.9,
  "jackpot": 3.9,
};
const FEW = { "fused": 2.3, "fused-g8": 2.2, "fused-s4": 2.4, "fused-g8-uc": 2.3 };

Deno.test("OBRS fused default: a faster jackpot-g8 is promoted; slower at k = 64 or within 5% it is not", () => {
  const s = sweep({ ...K20, "jackpot-g8": 3.4, "jackpot-s2": 3.8 }, FEW, FEW);
  const d = ruleObrsFused(data("o", s), CUR);
  assert.equal(d.status, "change");
  assert.deepEqual(d.edits.map((e) => `${e.file}: ${e.from} → ${e.to}`), [
    "src/obrs/gpu/topk.ts: a.groups ?? 4 → a.groups ?? 8",
    "src/obrs/gpu/inputs.ts: p.topkGroups ?? 4 → p.topkGroups ?? 8",
  ]);
  const slow64 = sweep({ ...K20, "jackpot-g8": 3.4 }, FEW, { ...FEW, "fused-g8": 2.6 });
  assert.equal(ruleObrsFused(data("o", slow64), CUR).status, "no-change");
  const tie = ruleObrsFused(data("o", sweep({ ...K20, "jackpot-g8": 3.8 }, FEW, FEW)), CUR);
  assert.equal(tie.status, "no-change");
  assert.match(tie.decision, /g8 not faster \(per-chunk fixed cost\)/);
  // s2 is judged by the s4 rows at k = 1 and 64 (the sweep does not run s2 there)
  const s2 = ruleObrsFused(data("o", sweep({ ...K20, "jackpot-s2": 3.0 }, FEW, FEW)), CUR);
  assert.deepEqual(s2.edits.map((e) => e.to), ["a.segments ?? 2", "p.topkSegments ?? 2"]);
  // uc and s4-g8 are judged by their own k = 1 and 64 rows
  const uc = { ...FEW, "fused-uc": 2.2 };
  const ucWins = ruleObrsFused(data("o", sweep({ ...K20, "jackpot-uc": 3.0 }, uc, uc)), CUR);
  assert.equal(ucWins.status, "change", ucWins.decision);
  assert.deepEqual(ucWins.edits.map((e) => e.to), [
    "(a.uniformCount ?? true) ? 1 : 0",
    "p.topkUniformCount ?? true",
  ]);
  const s4g8 = { ...FEW, "fused-s4-g8": 2.6 }; // slower than fused at k = 1 and 64
  const s4g8Slow = ruleObrsFused(
    data("o", sweep({ ...K20, "jackpot-s4-g8": 3.0 }, s4g8, s4g8)),
    CUR,
  );
  assert.equal(s4g8Slow.status, "no-change");
  assert.match(s4g8Slow.decision, /fused-s4-g8 is slower than fused at k = 1 .*, k = 64/);
  // a k1/k64 stage cut before fused-uc: cannot decide, saying which rows are missing
  assertCannot(
    ruleObrsFused(data("o", sweep({ ...K20, "jackpot-uc": 3.0 }, FEW, uc)), CUR),
    "no k = 1 fused-uc figure",
  );
  // a WRONG fused-g8 keeps jackpot-g8 out of the running
  const wrongG8 = sweep({ ...K20, "jackpot-g8": 3.0 }, FEW, FEW, ["fused-g8: row 3 differs"]);
  assert.equal(ruleObrsFused(data("o", wrongG8), CUR).status, "no-change");
  assertCannot(ruleObrsFused(absent("obrs_sweep.log"), CUR), "obrs_sweep.log");
});

Deno.test("OBRS sweep.sh runs, at k = 1 and 64, every fused variant's proxy and its top-k twin", async () => {
  const text = await Deno.readTextFile("bench/obrs/sweep.sh");
  const few = [...text.matchAll(/^few\+?='([^']*)'/gm)].map((m) => m[1]).join("").split(",");
  assert.ok(/stage k1 1 "\$few"/.test(text) && /stage k64 64 "\$few"/.test(text), text);
  const known = new Set([...TOPK_VERSIONS.map((v) => v.id), ...FUSED_VARIANTS.map((v) => v.id)]);
  assert.deepEqual(few.filter((id) => !known.has(id)), [], "every case id exists");
  for (const v of FUSED_VARIANTS) {
    const proxy = /^fused-s[28]$/.test(v.id) ? "fused-s4" : v.id;
    const twin = proxy.replace(/^fused/, "v10").replace(/^v10-s(\d)/, "v11-s$1");
    assert.ok(few.includes(proxy) && few.includes(twin), `${v.id}: ${proxy}, ${twin} in ${few}`);
  }
});

Deno.test("OBRS lse, controls and WRONG defaults", () => {
  const lse = (c: Record<string, number>) =>
    ruleObrsLse(data("o", sweep({ ...K20, ...c }, FEW, FEW)), CUR);
  assert.equal(lse({}).status, "no-change"); // l2 within 5% of lse-v2
  assert.deepEqual(lse({ "lse-v2-l8": 1.0 }).edits[0], {
    file: "src/obrs/gpu/ops.ts",
    constant: "a.loads ?? N",
    from: "a.loads ?? 4",
    to: "a.loads ?? 8",
  });
  assert.match(lse({ "lse-v2": 1.7 }).edits[0].to, /revert/);
  const noV1 = sweep({ "lse-v2": 1.2 }, {}, {});
  assertCannot(ruleObrsLse(data("o", noV1), CUR), "lse-v1");
  assert.match(
    ruleObrsControl(data("o", sweep({ ...K20, v10: 1.8 }, {}, {}))).decision,
    /v10 is slower than v9/,
  );
  assert.match(ruleObrsControl(data("o", sweep(K20, {}, {}))).decision, /controls hold/);
  const wrong = ruleObrsWrong(
    data("o", sweep(K20, {}, {}, ["fused: lse differs", "v10-uc: ids differ"])),
  );
  assert.equal(wrong.status, "change");
  assert.deepEqual(wrong.edits.map((e) => e.file), ["kernels/topk_stream.wgsl"]);
  assert.equal(
    ruleObrsWrong(data("o", sweep(K20, {}, {}, ["v10-uc: ids differ"]))).status,
    "no-change",
  );
});

Deno.test("OBRS log lines parse back to the rows bench/obrs/main.ts printed", () => {
  const r = obrsResult(20, { "jackpot-g8-uc": 3.456, "v11-s4-g8": 1.25, "lse-v2-l2": 0.9876 });
  const log = [
    "== k20-fused: 4096 × 151936, k = 20, --only 'fused*,jackpot*' (limit 60s)",
    ...r.results.map((x) => `[obrs k=20] ${formatRow(x)}`),
    "[obrs k=20] WRONG (not timed): fused-s8: row 5: lse 1.2 vs 1.3",
    "OBRS [4096 × 151936], k = 20 on H100", // the closing table is not read
    formatRow(r.results[0]),
  ].join("\n");
  const got = parseObrsLog(log, "sweep.log");
  assert.deepEqual(
    got.cases.map((c) => [c.id, c.medianMs]),
    r.results.map((x) => [x.id, Number(x.medianMs.toFixed(3))]),
  );
  assert.deepEqual(got.wrong, [{
    k: 20,
    id: "fused-s8",
    why: "row 5: lse 1.2 vs 1.3",
    file: "sweep.log",
  }]);
  assert.deepEqual(got.notes, []);
  // files from before the id field: ids from the names, or none for the old unnamed passes
  const old = obrsFromJson([{
    ...r,
    results: [{ ...r.results[1], id: undefined }, {
      ...r.results[0],
      id: undefined,
      name: "fused row pass: lse + top-k",
    }],
  }], "old.json");
  assert.deepEqual(old.cases.map((c) => c.id), ["v11-s4-g8"]);
});

// ---- profile ----
Deno.test("profile: top kernels by total time per anchor; missing cannot decide", () => {
  const row = (label: string, totalMs: number): ProfileRow => ({
    label,
    count: 2,
    totalMs,
    medianMs: totalMs / 2,
    share: totalMs / 10,
  });
  const p: AnchorProfile = {
    anchor: "5M",
    B: 64,
    T: 128,
    stepOnePassMs: 9,
    stepProfiledMs: 10,
    stepDispatches: 189,
    stepByKernel: [row("a", 1), row("b", 5), row("c", 3)],
    stepByDispatch: [],
    genBatch: 64,
    genTokens: 128,
    genProfiledMs: 300,
    genDispatches: 7000,
    genByKernel: [row("m", 2)],
    genByDispatch: [],
  };
  const d = ruleProfile(data<ProfileFile>("p.json", { adapter: "H100", profiles: [p] }), 2);
  assert.equal(d.status, "info");
  assert.deepEqual(d.figures.filter((f) => f.name.startsWith("5M step:")).map((f) => f.name), [
    "5M step: b",
    "5M step: c",
  ]);
  assert.match(d.decision, /5M step: b 50%/);
  assertCannot(ruleProfile(absent("bench/profile.json")), "profile.json");
});

// ---- files, archives and the script ----
async function writeTree(root: string) {
  const w = (p: string, x: unknown) => Deno.writeTextFile(`${root}/${p}`, JSON.stringify(x));
  await Deno.mkdir(`${root}/bench`, { recursive: true });
  await Deno.mkdir(`${root}/torch`, { recursive: true });
  await Deno.mkdir(`${root}/obrs_json`, { recursive: true });
  await Deno.mkdir(`${root}/obrs`, { recursive: true });
  await w(
    "bench/tensor.json",
    tensorFile((op) => (op.startsWith("layerNorm backward") ? 0.5 : 0.9)),
  );
  await w("bench/matmul_decode.json", decodeFile(decodeMs(() => 20)));
  await w("torch/matmul_decode.json", { rows: [] }); // PyTorch's file of the same name is not ours
  await w("bench/swiglu_down.json", swigluFile(() => 0.8));
  await w("bench/add_rms_qkv.json", addRmsFile((a) => (a === "29M" ? 1.2 : 0.8)));
  await w("bench/transformer_composed.json", nnFile("composed", (a) => BASE[a] * 1.5));
  await w("bench/transformer_auto.json", nnFile("auto", (a) => BASE[a]));
  await w("bench/transformer_defer0.json", nnFile("auto", (a) => BASE[a] * 0.9));
  await w("bench/transformer_defer64.json", nnFile("auto", (a) => BASE[a] * 1.1));
  await w("bench/profile.json", "not a profile");
  await w("obrs_json/obrs_k20-fused.json", [
    obrsResult(20, { fused: 1.9, jackpot: 3.9, "jackpot-g8": 3.0 }),
  ]);
  await w("obrs_json/obrs_k1.json", [obrsResult(1, FEW)]);
  // k = 64's stage was stopped by its time limit: only its log lines remain
  const k64 = obrsResult(64, FEW).results.map((x) => `[obrs k=64] ${formatRow(x)}`).join("\n");
  await Deno.writeTextFile(`${root}/obrs/sweep.log`, k64 + "\n");
  const tar = (args: string[]) => new Deno.Command("tar", { args }).output();
  await tar(["czf", `${root}/obrs/obrs_sweep.tar.gz`, "-C", `${root}/obrs_json`, "."]);
  await Deno.remove(`${root}/obrs_json`, { recursive: true });
  await tar(["czf", `${root}/results.tar.gz`, "-C", root, "bench", "torch", "obrs"]);
}

Deno.test("inputs: a results.tar.gz with the OBRS archive inside, PyTorch's files ignored", async () => {
  const root = await Deno.makeTempDir();
  try {
    await writeTree(root);
    const found = await collectFiles([`${root}/results.tar.gz`]);
    try {
      const x = loadInputs(found.files);
      assert.ok(
        "data" in x.matmulDecode &&
          x.matmulDecode.path.endsWith("results.tar.gz:bench/matmul_decode.json"),
      );
      assert.ok(
        "problem" in x.profile && /unexpected format/.test(x.profile.problem),
        JSON.stringify(x.profile),
      );
      assert.ok("data" in x.obrs);
      const ks = new Set((x.obrs as { data: ObrsSweep }).data.cases.map((c) => c.k));
      assert.deepEqual([...ks].sort((a, b) => a - b), [1, 20, 64]);
    } finally {
      found.cleanup();
    }
    await assert.rejects(collectFiles([`${root}/nope`]), /neither a folder nor a \.tar\.gz/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("verdict.ts end to end: text blocks and --json on synthetic files", async () => {
  const root = await Deno.makeTempDir();
  try {
    await writeTree(root);
    const r = await runScript("bench/device/verdict.ts", [
      `${root}/results.tar.gz`,
      "--json",
      `${root}/v.json`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /edit: {5}src\/autograd\/norm\.ts {2}FUSED_BLOCKS: \d+ → \d+/);
    assert.match(r.stdout, /== profile \[CANNOT DECIDE\]/);
    const out = JSON.parse(await Deno.readTextFile(`${root}/v.json`)) as { decisions: Decision[] };
    const status = Object.fromEntries(out.decisions.map((d) => [d.rule, d.status]));
    assert.deepEqual(status, {
      "row-kernels": "change",
      "skinny-decode": "no-change",
      "skinny-reduce": "no-change",
      "skinny-variants": "no-change",
      "obrs-wrong": "no-change",
      "obrs-lse": "cannot-decide",
      "obrs-control": "cannot-decide",
      "obrs-fused-default": "change",
      "swiglu-down": "no-change",
      "attention-auto": "no-change",
      "defer-split": "change",
      "add-rms": "change",
      "profile": "cannot-decide",
    });
    assert.match(
      r.stdout,
      new RegExp(`add_rms_matmul\\.ts  ADD_RMS_FUSED_MAX_K: Number\\.POSITIVE_INFINITY → ${K5}`),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("verdict.ts on the 2026-11-23 H100 results: cannot decide, cleanly", async () => {
  const r = await runScript("bench/device/verdict.ts", [
    "bench/results/h100-2026-11-23",
    "--json",
    "-",
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  const out = JSON.parse(r.stdout) as { decisions: Decision[] };
  assert.ok(out.decisions.every((d) => d.status === "cannot-decide"), r.stdout);
  assert.match(out.decisions[0].decision, /predates the register-tiled row kernels/);
  const add = out.decisions.find((d) => d.rule === "add-rms")!;
  assert.match(add.decision, /bench\/add_rms_qkv\.json: not found \(written by the defer stage\)/);
});

Deno.test("verdict.ts command line: --help, a bad flag, no folder, a missing folder", async () => {
  const help = await runScript("bench/device/verdict.ts", ["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: deno run -A bench\/device\/verdict\.ts DIR… \[options\]/);
  assert.match(help.stdout, /--json VALUE/);
  for (
    const [args, says] of [[["--frob"], "unknown option '--frob'"], [[], "name at least one DIR"], [
      ["/nonexistent"],
      "neither a folder",
    ], [["x", "--top", "0"], "--top must be >= 1"]] as const
  ) {
    const r = await runScript("bench/device/verdict.ts", [...args]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.ok(r.stderr.includes(says), r.stderr);
  }
});

Deno.test("verdict.ts on real --small output of the bench scripts (CPU adapter)", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/bench`);
    for (
      const [script, ...args] of [
        [
          "bench/tensor/main.ts",
          "--small",
          "--repeats",
          "2",
          "--json",
          `${root}/bench/tensor.json`,
        ],
        ["bench/matmul/swiglu_down.ts", "--small", `--json=${root}/bench/swiglu_down.json`],
        ["bench/matmul/add_rms_qkv.ts", "--small", `--json=${root}/bench/add_rms_qkv.json`],
        // host only (no GPU timing): enough to read back the recorded --defer-split-mb
        [
          "bench/nn/main.ts",
          "--small",
          "--host-only",
          "--defer-split-mb=0",
          `--json=${root}/bench/transformer_defer0.json`,
        ],
        [
          "bench/nn/main.ts",
          "--small",
          "--host-only",
          `--json=${root}/bench/transformer_auto.json`,
        ],
        [
          "bench/matmul/main.ts",
          "--decode",
          "--small",
          "--repeats=2",
          `--json=${root}/bench/matmul_decode.json`,
        ],
      ]
    ) {
      const r = await runScript(script, args);
      assert.equal(r.code, 0, `${script}: ${r.stderr}`);
    }
    const r = await runScript("bench/device/verdict.ts", [root, "--json", "-"]);
    assert.equal(r.code, 0, r.stderr);
    const byRule = new Map(
      (JSON.parse(r.stdout) as { decisions: Decision[] }).decisions.map((d) => [d.rule, d]),
    );
    // the writers' real formats are read: the rules decide (the CPU's figures are no verdict)
    assert.notEqual(
      byRule.get("row-kernels")!.status,
      "cannot-decide",
      byRule.get("row-kernels")!.decision,
    );
    assert.equal(byRule.get("row-kernels")!.figures.length, TENSOR_OPS.length);
    assert.notEqual(byRule.get("swiglu-down")!.status, "cannot-decide");
    // add_rms_qkv --small: the 0.8M anchor's three products, judged (the others absent)
    const add = byRule.get("add-rms")!;
    assert.notEqual(add.status, "cannot-decide", add.decision);
    assert.ok(add.figures.some((f) => f.name === "0.8M (K = 128) saved per decode step"));
    assert.match(add.cautions.join(), /no figures for 5M, 29M/);
    const found = await collectFiles([root]);
    try {
      const x = loadInputs(found.files);
      const mb = (f: Input<TransformerFile>) => "data" in f ? f.data.deferSplitMb : f.problem;
      assert.equal(mb(x.transformerDefer0), 0);
      assert.equal(mb(x.transformerAuto), CUR.gradSumsSplitMaxBytes / 2 ** 20);
    } finally {
      found.cleanup();
    }
    // the decode run is read too; on a CPU it fails the trust checks (auto is not v14 there)
    const dec = byRule.get("skinny-decode")!;
    assert.doesNotMatch(dec.decision, /unexpected format|not found/);
    assert.ok(dec.figures.some((f) => f.name === "0.8M v14"), dec.decision);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
