// bench/device/verdict.ts's kernel rules (row kernels, skinny decode and its variants, swiglu-down,
// add-rms) on synthetic bench files: a clear win, a clear loss, a tie or borderline, a missing file.
import assert from "node:assert/strict";
import { ANCHORS } from "../src/nn/anchors.ts";
import { chooseSkinnyTiling, SKINNY_COST } from "../src/tensor/matmul/skinny.ts";
import type { DecodeShape } from "../bench/matmul/decode.ts";
import type { AddRmsRow } from "../bench/matmul/add_rms_qkv.ts";
import { ruleRowKernels, ruleSwigluDown } from "../bench/device/rules.ts";
import { ruleAddRms } from "../bench/device/rules_add_rms.ts";
import {
  ruleSkinnyDecode,
  ruleSkinnyReduce,
  ruleSkinnyVariants,
  splitBreakEvenUs,
} from "../bench/device/rules_skinny.ts";
import {
  absent,
  addRms,
  addRmsFile,
  assertCannot,
  CUR,
  data,
  decodeFile,
  decodeMs,
  K08,
  K29,
  K5,
  SHAPES,
  swigluFile,
  TENSOR_OPS,
  tensorFile,
} from "./verdict_fixtures.ts";

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
