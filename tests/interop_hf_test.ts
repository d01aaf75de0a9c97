// The jackpot side of the transformers interop check (bench/interop/hf.ts): what it exports
// loads back and reproduces its own logits, and `--check` passes a faithful folder, fails a
// wrong one, and tells an expected refusal from an unexpected one. The transformers side
// (bench/torch/hf_interop.py) runs on the GPU host: bench/device/run.sh stage `interop`.
import assert from "node:assert/strict";
import {
  checkCase,
  checkCases,
  type ExpectedLogits,
  EXPORT_CASES,
  exportCases,
} from "../bench/interop/hf.ts";
import { type HostTensor, loadCheckpoint, saveCheckpoint } from "../src/nn/checkpoint/mod.ts";
import { initTensors } from "../src/tensor/mod.ts";
import { runScript } from "./script_util.ts";

async function copyFolder(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

async function rewriteExpected(folder: string, f: (e: ExpectedLogits) => ExpectedLogits) {
  const path = `${folder}/expected.json`;
  await Deno.writeTextFile(path, JSON.stringify(f(JSON.parse(await Deno.readTextFile(path)))));
}

Deno.test("interop: exported checkpoints (q/k/v biases included) load through the CLI's loader and match their logits; wrong logits and wrong refusals fail", async () => {
  await initTensors();
  const dir = await Deno.makeTempDir({ prefix: "jackpot-interop-" });
  try {
    const folders = await exportCases(dir);
    assert.equal(folders.length, Object.keys(EXPORT_CASES).length);
    // Each exported folder, read back as if transformers had written it, passes exactly.
    for (const folder of folders) {
      const name = folder.split("/").pop()!.replace(/^ours-/, "theirs-");
      await copyFolder(folder, `${dir}/${name}`);
    }
    const results = await checkCases(dir, 0);
    assert.equal(results.length, folders.length);
    for (const r of results) {
      assert.ok(r.ok, `${r.name}: ${r.detail}`);
      assert.equal(r.maxAbsDiff, 0, r.name);
      assert.ok(r.maxAbsLogit! > 0.5, `${r.name}: logits too small to show anything`);
    }

    // One logit off by 1e-3: fails at tolerance 2e-4, passes at 2e-3.
    const off = `${dir}/theirs-qwen3-tied-gqa`;
    await rewriteExpected(off, (e) => {
      const logits = [...e.logits!];
      logits[logits.length - 3] += 1e-3;
      return { ...e, logits };
    });
    const bad = await checkCase(off, "off", 2e-4);
    assert.equal(bad.ok, false);
    assert.ok(Math.abs(bad.maxAbsDiff! - 1e-3) < 1e-5, bad.detail);
    assert.ok((await checkCase(off, "off", 2e-3)).ok);

    // A qwen2 folder whose q/k/v biases are nonzero (most Qwen2.5 checkpoints) loads: its logits
    // are no longer those of the bias-free expected.json (the bias is used, not dropped).
    const qwen2 = `${dir}/theirs-qwen2-tied-mqa`;
    const ck = await loadCheckpoint(qwen2);
    const name = "model.layers.0.self_attn.q_proj.bias";
    const b = ck.tensors.get(name)!;
    const biased = new Map<string, HostTensor>(ck.tensors).set(name, {
      shape: b.shape,
      data: new Float32Array(b.data.length).fill(0.1),
    });
    await saveCheckpoint(qwen2, { ...ck, tensors: biased });
    const moved = await checkCase(qwen2, "bias", 2e-4);
    assert.equal(moved.ok, false);
    assert.match(moved.detail, /^max \|Δlogit\| /);
    assert.ok(moved.maxAbsDiff! > 1e-3, moved.detail);
    // What jackpot refuses (a nonzero o_proj bias of a qwen3 attention_bias folder) passes only
    // when expected.
    const q3 = `${dir}/theirs-qwen3-bias-gqa`;
    const ck3 = await loadCheckpoint(q3);
    const oName = "model.layers.1.self_attn.o_proj.bias";
    const o = ck3.tensors.get(oName)!;
    await saveCheckpoint(q3, {
      ...ck3,
      tensors: new Map<string, HostTensor>(ck3.tensors).set(oName, {
        shape: o.shape,
        data: new Float32Array(o.data.length).fill(0.1),
      }),
    });
    const refused = await checkCase(q3, "obias", 2e-4);
    assert.equal(refused.ok, false);
    assert.match(
      refused.detail,
      /load failed: .*o_proj\.bias.*o_proj biases .* are not implemented/,
    );
    await rewriteExpected(q3, (e) => ({
      tokens: e.tokens,
      expect_error: "o_proj biases (qwen3 with attention_bias) are not implemented",
    }));
    assert.ok((await checkCase(q3, "obias", 2e-4)).ok);
    // Expecting a refusal from a folder that loads is a failure.
    const tied = `${dir}/theirs-qwen3-untied-mha`;
    await rewriteExpected(tied, (e) => ({ tokens: e.tokens, expect_error: "anything" }));
    const loaded = await checkCase(tied, "untied", 2e-4);
    assert.equal(loaded.ok, false);
    assert.match(loaded.detail, /loaded, but expected: anything/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("interop: the script's command line refuses bad use with one line", async () => {
  const none = await runScript("bench/interop/hf.ts", []);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /give exactly one of --export DIR and --check DIR/);
  const empty = await Deno.makeTempDir({ prefix: "jackpot-interop-empty-" });
  try {
    const r = await runScript("bench/interop/hf.ts", ["--check", empty]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no theirs-\* folders in/);
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});
