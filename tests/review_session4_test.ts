// Review of the decode fusions and bench/args.ts (session 4): regressions found, each with the
// behaviour it pins down.
import assert from "node:assert/strict";
import { runScript } from "./script_util.ts";

// The anchors of bench/nn/main.ts's table, in the order printed (" 0.8M 0.82M  train B=4 ...").
function anchorsOf(stdout: string): string[] {
  return [...stdout.matchAll(/^\s*(\S+)\s+[\d.]+M\s+train /gm)].map((m) => m[1]);
}

// bench/args.ts's applyNnFlags filled in every anchor when --anchors was absent, which hid the
// script's own default: --small (what `deno task bench --small` passes on a CPU adapter) ran the
// 5M and 29M training steps too. --host-only keeps these runs to about a second each.
Deno.test("bench/nn/main.ts --small runs the 0.8M anchor only unless --anchors names others", async () => {
  const plain = await runScript("bench/nn/main.ts", ["--small", "--host-only"]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.deepEqual(anchorsOf(plain.stdout), ["0.8M"], plain.stdout);
  const named = await runScript("bench/nn/main.ts", ["--small", "--host-only", "--anchors", "5M"]);
  assert.equal(named.code, 0, named.stderr);
  assert.deepEqual(anchorsOf(named.stdout), ["5M"], named.stdout);
});

// A bad value must be refused before the script opens the GPU (tests/bench_args_test.ts says each
// case "fails before any GPU work"): bench/tensor/main.ts read --rows/--cols/--repeats after
// initTensors (printing the adapter first), and bench/matmul/main.ts checked --versions after
// getGpu. A GPU opened first shows as output before the error: the adapter line on stdout, or
// the Vulkan loader's warnings on stderr where XDG_RUNTIME_DIR is unset (as on this machine).
for (
  const [script, args] of [
    ["bench/tensor/main.ts", ["--cols", "1.5"]],
    ["bench/tensor/main.ts", ["--repeats", "0"]],
    ["bench/matmul/main.ts", ["--versions", "v5,v99"]],
  ] as const
) {
  Deno.test(`${script} ${args.join(" ")}: refused before the GPU is opened`, async () => {
    const r = await runScript(script, [...args]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, "", "nothing printed before the error");
    assert.equal(r.stderr.trim().split("\n").length, 1, `one line, got:\n${r.stderr}`);
  });
}

Deno.test("a KV cache built for another model is refused by prefill and decodeStep", async () => {
  const { initTensors, tensor } = await import("../src/tensor/mod.ts");
  const { noGrad } = await import("../src/autograd/mod.ts");
  const { Transformer } = await import("../src/nn/transformer.ts");
  const { KVCache, decodeStep, prefill } = await import("../src/nn/kv_cache.ts");
  await initTensors();
  const base = {
    vocabSize: 16,
    hidden: 16,
    layers: 2,
    heads: 2,
    kvHeads: 1,
    headDim: 8,
    intermediate: 24,
    maxSeqLen: 8,
    ropeTheta: 10000,
    normEps: 1e-6,
    tiedEmbeddings: true,
    qkNorm: true,
  };
  const model = Transformer.init(base, { seed: 1 });
  for (const other of [{ kvHeads: 2 }, { layers: 1 }, { headDim: 4, hidden: 8 }]) {
    const foreign = Transformer.init({ ...base, ...other }, { seed: 2 });
    const cache = new KVCache(foreign, 2, 8);
    const ids = tensor(new Int32Array([1, 2]), [2]);
    assert.throws(
      () => noGrad(() => decodeStep(model, ids, cache, 0)),
      /decodeStep: the KV cache holds .* the model has 2 layers of 1 kv heads × 8/,
    );
    const prompt = tensor(new Int32Array([1, 2]), [1, 2]);
    assert.throws(() => noGrad(() => prefill(model, prompt, cache)), /prefill: the KV cache holds/);
    ids.dispose();
    prompt.dispose();
    cache.dispose();
    noGrad(() => foreign.dispose());
  }
  const own = new KVCache(model, 2, 8);
  const ids = tensor(new Int32Array([1, 2]), [2]);
  noGrad(() => decodeStep(model, ids, own, 0)).dispose();
  ids.dispose();
  own.dispose();
  noGrad(() => model.dispose());
});
