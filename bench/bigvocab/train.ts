/**
 * Real-size smoke test of training with a large vocabulary: one AdamW step (forward, fused
 * cross-entropy, backward, clipped AdamW, zeroGrad) of a random-weight model with Qwen3-0.6B's
 * shapes (vocabulary 151,936, hidden 1024, 16 heads, 8 KV heads, head_dim 128, intermediate 3072,
 * tied embeddings) and few layers, over B·T rows. The [151936, 1024] table (622 MB), its gradient
 * and moments, and the [B·T, 151936] logits and their gradient (311 MB at 512 rows) are each over
 * the 128 MiB storage binding of llvmpipe: every op that touches them runs in blocks. Checks the
 * loss against ln V (small random weights give near-uniform logits) and the update of table rows
 * in the first and last blocks against AdamW's rule in float64 from their read-back gradients;
 * reports the time of each step and peak memory.
 *
 * ```sh
 * deno run -A bench/bigvocab/train.ts                      # 2 layers, B·T = 4 × 128 = 512 rows
 * deno run -A bench/bigvocab/train.ts --batch 1 --seq 64  # a quicker look
 * ```
 *
 * @module
 */
import { AdamW, ops } from "../../src/autograd/mod.ts";
import { Transformer } from "../../src/nn/transformer.ts";
import { initTensors, readAll, type Tensor, tensor, tidy } from "../../src/tensor/mod.ts";
import { peakRssMiB, QWEN3_VOCAB, qwen3ShapedConfig } from "./qwen_shape.ts";
import { benchArgs, benchInt } from "../args.ts";

const SCRIPT = "bench/bigvocab/train.ts";

/** What one run measured. */
export interface BigVocabTrainResult {
  layers: number;
  vocab: number;
  rows: number;
  parameters: number;
  /** Storage binding limit of the adapter (bytes). */
  bindingLimit: number;
  initSeconds: number;
  /** Wall time of each step (recording and GPU work, until its loss is read back). */
  stepSeconds: number[];
  /** Dispatches each step recorded. */
  stepDispatches: number[];
  losses: number[];
  gradNorm: number;
  /** Largest |GPU − float64| of the checked table rows' AdamW update, relative to lr. */
  updateWorstRelError: number;
  peakRssMiB: number;
}

if (import.meta.main) {
  const values = benchArgs(SCRIPT, "a training step of a Qwen3-0.6B-shaped model on this adapter", {
    layers: { type: "string", default: "2", help: "transformer layers (Qwen3-0.6B: 28)" },
    batch: { type: "string", default: "4", help: "sequences B" },
    seq: { type: "string", default: "128", help: "tokens per sequence T (B·T rows of logits)" },
    steps: { type: "string", default: "1", help: "training steps timed" },
    json: { type: "string", help: "write the result here as JSON" },
  });
  const layers = benchInt(SCRIPT, values, "layers", 2, { min: 1 });
  const B = benchInt(SCRIPT, values, "batch", 4, { min: 1 });
  const T = benchInt(SCRIPT, values, "seq", 128, { min: 2 });
  const steps = benchInt(SCRIPT, values, "steps", 1, { min: 1 });
  const rt = await initTensors();
  const V = QWEN3_VOCAB;
  const cfg = qwen3ShapedConfig(layers, T);
  const t0 = performance.now();
  const model = Transformer.init(cfg, { seed: 1 });
  const params = model.parameters();
  const parameters = params.reduce((s, p) => s + p.size, 0);
  await readAll([ops.slice(model.embed, 0, V - 1, V)]); // waits for the init
  const initSeconds = (performance.now() - t0) / 1000;
  const lr = 1e-3, weightDecay = 0.1, maxGradNorm = 1;
  const opt = new AdamW(params, { lr, weightDecay, maxGradNorm });
  console.log(
    `model: ${layers} layers, ${(parameters / 1e6).toFixed(1)}M parameters, ${B}×${T} = ${
      B * T
    } rows (logits ${(B * T * V * 4 / 2 ** 20).toFixed(0)} MiB, binding limit ` +
      `${rt.storageBindingLimit / 2 ** 20} MiB), init ${initSeconds.toFixed(1)} s; ` +
      `AdamW ${opt.packed ? "packed" : "per parameter"}`,
  );
  // a next-token stream of ids spread over the vocabulary (every block of the table is read)
  const stream = Int32Array.from({ length: B * (T + 1) }, (_, i) => (i * 104_729 + 17) % V);
  const ids = new Int32Array(B * T), tg = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      ids[b * T + t] = stream[b * (T + 1) + t];
      tg[b * T + t] = stream[b * (T + 1) + t + 1];
    }
  }
  const tokens = tensor(ids, [B, T]), targets = tensor(tg, [B, T]);
  // table rows checked after the first step: the first, the last, and rows around a block edge
  const perBlock = Math.floor(rt.storageBindingLimit / 4 / cfg.hidden / 64) * 64;
  const rows = [0, V - 1, ...(perBlock < V ? [perBlock - 1, perBlock] : [])];
  const rowOf = (t: Tensor, r: number) => ops.slice(t, 0, r, r + 1);
  const stepSeconds: number[] = [], stepDispatches: number[] = [], losses: number[] = [];
  let gradNorm = NaN, worst = 0;
  for (let s = 0; s < steps; s++) {
    const t = performance.now();
    const d0 = rt.counters.dispatches;
    const loss = tidy(() => {
      const l = model.loss(tokens, targets);
      l.backward();
      return l;
    });
    let before: Float32Array[] = [];
    if (s === 0) {
      // the parameters and gradients of the checked rows, before the update (one readback)
      const views = rows.flatMap((r) => [rowOf(model.embed, r), rowOf(model.embed.grad!, r)]);
      before = (await readAll(views)) as Float32Array[];
      views.forEach((v) => v.dispose());
    }
    opt.step();
    opt.zeroGrad();
    stepDispatches.push(rt.counters.dispatches - d0);
    const [l, n] = await readAll([loss, opt.gradNorm]);
    stepSeconds.push((performance.now() - t) / 1000);
    losses.push(l[0]);
    gradNorm = n[0];
    loss.dispose();
    if (s === 0) {
      const after = (await readAll(rows.map((r) => rowOf(model.embed, r)))) as Float32Array[];
      // AdamW's first step in float64: m̂ = g·c, v̂ = (g·c)², p -= lr·(m̂/(√v̂ + eps) + wd·p)
      const clip = n[1];
      rows.forEach((_, i) => {
        const p = before[2 * i], g = before[2 * i + 1];
        for (let c = 0; c < cfg.hidden; c++) {
          const gc = g[c] * clip;
          const want = p[c] - lr * (gc / (Math.abs(gc) + 1e-8) + weightDecay * p[c]);
          worst = Math.max(worst, Math.abs(after[i][c] - want) / lr);
        }
      });
    }
    console.log(
      `step ${s + 1}: loss ${l[0].toFixed(4)} (ln V = ${Math.log(V).toFixed(4)}), grad norm ` +
        `${n[0].toExponential(3)}, ${stepDispatches[s]} dispatches, ` +
        `${stepSeconds[s].toFixed(1)} s`,
    );
  }
  if (!losses.every((l) => Math.abs(l - Math.log(V)) < 0.5)) {
    throw new Error(`losses ${losses} are not near ln V = ${Math.log(V)}`);
  }
  const result: BigVocabTrainResult = {
    layers,
    vocab: V,
    rows: B * T,
    parameters,
    bindingLimit: rt.storageBindingLimit,
    initSeconds,
    stepSeconds,
    stepDispatches,
    losses,
    gradNorm,
    updateWorstRelError: worst,
    peakRssMiB: peakRssMiB(),
  };
  console.log(
    `embedding rows ${rows.join(", ")} after the step vs AdamW in float64: worst |error| / lr ` +
      `${worst.toExponential(2)}; peak RSS ${result.peakRssMiB.toFixed(0)} MiB`,
  );
  if (!(worst < 1e-2)) throw new Error(`the table's update is off by ${worst} lr`);
  if (values.json) Deno.writeTextFileSync(String(values.json), JSON.stringify(result, null, 2));
  [tokens, targets].forEach((t) => t.dispose());
  opt.dispose();
  model.dispose();
}
