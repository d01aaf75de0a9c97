/**
 * Real-size smoke test of a large vocabulary: a random-weight model with Qwen3-0.6B's shapes
 * (vocabulary 151,936, hidden 1024, 28 layers, 16 heads, 8 KV heads, head_dim 128, intermediate
 * 3072, tied embeddings: 596M parameters, the embedding/classifier alone 622 MB, over the
 * 128 MiB storage binding of llvmpipe and many laptop GPUs) sampling a few tokens through
 * `RolloutEngine`, so the embedding lookup, the classifier (in blocks of rows,
 * src/tensor/matmul/blocked.ts) and the sampling kernels run at full size. Checks the classifier
 * at its block boundaries against float64, and reports time per token and peak memory.
 *
 * ```sh
 * deno run -A bench/bigvocab/main.ts                # 28 layers, 4 tokens after a 4-token prompt
 * deno run -A bench/bigvocab/main.ts --layers 2 --tokens 3
 * ```
 *
 * @module
 */
import { noGrad, ops } from "../../src/autograd/mod.ts";
import { createStorageBuffer } from "../../src/gpu/mod.ts";
import { Transformer } from "../../src/nn/transformer.ts";
import { RolloutEngine } from "../../src/nn/rollout.ts";
import { initTensors, readAll, tensor, tidy } from "../../src/tensor/mod.ts";
import { matmulBlocks, planMatmul } from "../../src/tensor/matmul/mod.ts";
import { peakRssMiB, QWEN3_VOCAB, qwen3ShapedConfig } from "./qwen_shape.ts";
import { benchArgs, benchInt } from "../args.ts";

const SCRIPT = "bench/bigvocab/main.ts";

/** What one run measured. */
export interface BigVocabResult {
  layers: number;
  vocab: number;
  parameters: number;
  /** Rows of the classifier per block (N of its blocks), and how many blocks. */
  classifierBlockRows: number;
  classifierBlocks: number;
  initSeconds: number;
  /** generate() with one new token (prefill + one step), and with `tokens` + 1. */
  firstTokenSeconds: number;
  secondsPerToken: number;
  /** Largest |GPU − float64| / Σ|h·w| over the checked classifier columns. */
  classifierWorstRelError: number;
  peakRssMiB: number;
}

if (import.meta.main) {
  const values = benchArgs(SCRIPT, "a Qwen3-0.6B-shaped model sampling on this adapter", {
    layers: { type: "string", default: "28", help: "transformer layers (Qwen3-0.6B: 28)" },
    tokens: { type: "string", default: "4", help: "tokens timed after the first" },
    prompt: { type: "string", default: "4", help: "prompt length" },
    batch: { type: "string", default: "1", help: "rows sampled together" },
    json: { type: "string", help: "write the result here as JSON" },
  });
  const layers = benchInt(SCRIPT, values, "layers", 28, { min: 1 });
  const tokens = benchInt(SCRIPT, values, "tokens", 4, { min: 1 });
  const promptLength = benchInt(SCRIPT, values, "prompt", 4, { min: 1 });
  const batch = benchInt(SCRIPT, values, "batch", 1, { min: 1 });
  const rt = await initTensors();
  const V = QWEN3_VOCAB;
  const cfg = qwen3ShapedConfig(layers, 64);
  const t0 = performance.now();
  const model = Transformer.init(cfg, { seed: 1 });
  const parameters = model.parameters().reduce((s, p) => s + p.size, 0);
  await readAll([ops.slice(model.embed, 0, V - 1, V)]); // waits for the init (a row, read as is)
  const initSeconds = (performance.now() - t0) / 1000;
  // the blocks the classifier of a decode step is computed in (a and c: stand-ins of their size)
  const [xBuf, yBuf] = [cfg.hidden, V].map((n) => createStorageBuffer(rt.gpu, 4 * batch * n));
  const blocks = matmulBlocks(
    planMatmul(rt.gpu, {
      a: { buffer: xBuf },
      b: { buffer: model.embed.storageBuffer },
      c: { buffer: yBuf },
      M: batch,
      N: V,
      K: cfg.hidden,
      transB: true,
      maxBindingBytes: rt.storageBindingLimit,
    }),
    rt.storageOffsetAlignment,
  );
  xBuf.destroy();
  yBuf.destroy();
  console.log(
    `model: ${layers} layers, ${(parameters / 1e6).toFixed(1)}M parameters ` +
      `(embedding ${(V * cfg.hidden * 4 / 1e6).toFixed(0)} MB, binding limit ` +
      `${rt.storageBindingLimit / 2 ** 20} MiB), init ${initSeconds.toFixed(1)} s; ` +
      `classifier blocks of ${blocks?.N ?? V} rows`,
  );

  // The classifier at its block boundaries against float64: logits of one token vs h·W[n].
  const cols = [0, 1, V - 1, V - 2];
  if (blocks) {
    for (let n = blocks.N; n < V; n += blocks.N) cols.push(n - 1, n);
  }
  const [h, logits] = noGrad(() =>
    tidy(() => {
      const toks = tensor(Int32Array.from([17, 151_935, 3]), [1, 3]);
      const hid = model.hidden(toks);
      const normed = ops.rmsNorm(hid, model.finalNorm, cfg.normEps);
      return [normed, model.classify(normed)];
    })
  );
  const rows = cols.map((n) => ops.slice(model.embed, 0, n, n + 1));
  const got = await readAll([h, logits, ...rows]);
  let worst = 0;
  for (let t = 0; t < 3; t++) {
    cols.forEach((n, j) => {
      let dot = 0, mag = 0;
      for (let c = 0; c < cfg.hidden; c++) {
        const p = got[0][t * cfg.hidden + c] * got[2 + j][c];
        dot += p;
        mag += Math.abs(p);
      }
      const err = Math.abs(got[1][t * V + n] - dot) / mag;
      if (!(err <= worst)) worst = Number.isNaN(err) ? Infinity : Math.max(worst, err);
    });
  }
  [h, logits, ...rows].forEach((t) => t.dispose());
  console.log(
    `classifier at ${cols.length} columns (block edges included) vs float64: worst |error|/Σ|h·w| ` +
      `${worst.toExponential(2)}`,
  );

  const prompts = Array.from(
    { length: batch },
    (_, b) => Int32Array.from({ length: promptLength }, (_, i) => (b * 7919 + i * 104_729) % V),
  );
  // generate() samples maxNewTokens per row (no stop token): one engine for 1, one for tokens + 1
  const timeGenerate = async (n: number) => {
    const engine = new RolloutEngine(model, {
      maxBatch: batch,
      maxPromptLength: promptLength,
      maxNewTokens: n,
    });
    await engine.generate(prompts, { seed: 4, temperature: 1 }); // warm-up: pipelines compiled
    const t = performance.now();
    const r = await engine.generate(prompts, { seed: 5, temperature: 1 });
    const seconds = (performance.now() - t) / 1000;
    engine.dispose();
    return { seconds, r };
  };
  const one = await timeGenerate(1);
  const many = await timeGenerate(tokens + 1);
  const secondsPerToken = (many.seconds - one.seconds) / tokens;
  const sampled = Array.from(many.r.tokens.slice(0, tokens + 1));
  if (sampled.some((t) => !(t >= 0 && t < V))) throw new Error(`bad tokens ${sampled}`);
  const result: BigVocabResult = {
    layers,
    vocab: V,
    parameters,
    classifierBlockRows: blocks?.N ?? V,
    classifierBlocks: Math.ceil(V / (blocks?.N ?? V)),
    initSeconds,
    firstTokenSeconds: one.seconds,
    secondsPerToken,
    classifierWorstRelError: worst,
    peakRssMiB: peakRssMiB(),
  };
  console.log(
    `sampled ${sampled.join(", ")} (row 0); prefill + 1 token ${one.seconds.toFixed(2)} s, ` +
      `${secondsPerToken.toFixed(2)} s per further token (batch ${batch}); peak RSS ` +
      `${result.peakRssMiB.toFixed(0)} MiB`,
  );
  if (values.json) Deno.writeTextFileSync(String(values.json), JSON.stringify(result, null, 2));
  model.dispose();
}
