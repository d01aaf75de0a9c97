// bench/device/verdict.ts's transformer and OBRS rules (attention auto bound, split-K deferral, the
// OBRS fused/lse/control/wrong rules, the profile) on synthetic bench files, and the OBRS log parser
// against the rows bench/obrs/main.ts prints.
import assert from "node:assert/strict";
import { ANCHORS } from "../src/nn/anchors.ts";
import type { ProfileRow } from "../src/gpu/profile.ts";
import type { AnchorProfile } from "../bench/nn/profile.ts";
import { formatRow } from "../bench/obrs/main.ts";
import { FUSED_VARIANTS, TOPK_VERSIONS } from "../bench/obrs/versions.ts";
import type { ProfileFile } from "../bench/device/files.ts";
import { obrsFromJson, parseObrsLog } from "../bench/device/files.ts";
import { ruleProfile } from "../bench/device/rules.ts";
import { attentionWork, ruleAttention, ruleDefer } from "../bench/device/rules_nn.ts";
import {
  ruleObrsControl,
  ruleObrsFused,
  ruleObrsLse,
  ruleObrsWrong,
} from "../bench/device/rules_obrs.ts";
import {
  absent,
  assertCannot,
  BASE,
  CUR,
  data,
  FEW,
  nnFile,
  obrsResult,
  sweep,
} from "./verdict_fixtures.ts";

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

const K20 = {
  "v9": 1.6,
  "v10": 1.6,
  "lse-v1": 1.5,
  "lse-v2": 1.2,
  "lse-v2-l2": 1.19,
  "fused": 1.9,
  "jackpot": 3.9,
};

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
