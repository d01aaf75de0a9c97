// bench/device/verdict.ts's file finder (folders, nested .tar.gz, older formats) and the script end
// to end: synthetic files, the 2026-11-23 H100 results (older formats: "cannot decide", never a
// stack trace), and real output of the bench scripts' --small runs on this CPU adapter.
import assert from "node:assert/strict";
import { formatRow } from "../bench/obrs/main.ts";
import type { Decision, Input } from "../bench/device/decision.ts";
import type { ObrsSweep, TransformerFile } from "../bench/device/files.ts";
import { collectFiles, loadInputs } from "../bench/device/inputs.ts";
import { runScript } from "./script_util.ts";
import {
  addRmsFile,
  BASE,
  CUR,
  decodeFile,
  decodeMs,
  FEW,
  K5,
  nnFile,
  obrsResult,
  swigluFile,
  TENSOR_OPS,
  tensorFile,
} from "./verdict_fixtures.ts";

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
