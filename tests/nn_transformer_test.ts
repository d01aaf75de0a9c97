import assert from "node:assert/strict";
import { noGrad, setDeferredGradSums } from "../src/autograd/mod.ts";
import { copyInto, initTensors, readAll, tensor, tidy } from "../src/tensor/mod.ts";
import { type ModelConfig, parameterCount, validateModelConfig } from "../src/nn/config.ts";
import { referenceLogits, referenceLoss, type RefParams } from "../src/nn/reference.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { Rng } from "../src/util/rng.ts";

const BASE: ModelConfig = {
  vocabSize: 11,
  hidden: 8,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  headDim: 4,
  intermediate: 12,
  maxSeqLen: 16,
  ropeTheta: 10000,
  normEps: 1e-6,
  tiedEmbeddings: true,
  qkNorm: true,
};

async function hostParams(model: Transformer): Promise<RefParams> {
  const named = model.namedParameters();
  const data = await readAll([...named.values()]);
  const m: RefParams = new Map();
  [...named.keys()].forEach((k, i) => m.set(k, Float64Array.from(data[i])));
  return m;
}

// Nonzero random q/k/v biases (init sets them to zero, which would test nothing).
function randomBiases(model: Transformer, seed: number): void {
  const rng = new Rng(seed);
  for (const b of model.blocks) {
    if (!b.bQkv) continue;
    const data = Float32Array.from({ length: b.bQkv.size }, () => 0.5 * rng.normal());
    tidy(() => copyInto(tensor(data, b.bQkv!.shape), b.bQkv!));
  }
}

function batch(rng: Rng, B: number, T: number, V: number) {
  const tokens = Array.from({ length: B }, () => Int32Array.from({ length: T }, () => rng.int(V)));
  const targets = tokens.map((seq) =>
    Int32Array.from(seq, (_, t) => (t + 1 < T && rng.uniform() < 0.8 ? seq[t + 1] : -1))
  );
  return { tokens, targets };
}

for (
  const variant of [
    {},
    { tiedEmbeddings: false, qkNorm: false, kvHeads: 4 },
    { kvHeads: 1 },
    { attentionBias: true },
    { qkNorm: false, attentionBias: true, kvHeads: 1 },
  ]
) {
  const cfg = validateModelConfig({ ...BASE, ...variant });
  const label = JSON.stringify(variant);

  Deno.test(`transformer ${label}: logits match the float64 reference`, async () => {
    await initTensors();
    const model = Transformer.init(cfg, { seed: 3, std: 0.3 });
    randomBiases(model, 4);
    const rng = new Rng(5);
    const { tokens } = batch(rng, 2, 6, cfg.vocabSize);
    const flat = new Int32Array(tokens.flatMap((t) => [...t]));
    const logits = noGrad(() => tidy(() => model.forward(tensor(flat, [2, 6]))));
    const [got] = await readAll([logits]);
    const p = await hostParams(model);
    let maxErr = 0;
    tokens.forEach((seq, b) =>
      referenceLogits(cfg, p, seq).forEach((row, t) =>
        row.forEach((
          v,
          i,
        ) => (maxErr = Math.max(maxErr, Math.abs(v - got[(b * 6 + t) * cfg.vocabSize + i]))))
      )
    );
    console.log(`${label}: max |logit − float64| ${maxErr.toExponential(2)}`);
    assert.ok(maxErr < 1e-4, `max |logit error| ${maxErr}`);
    assert.equal(model.parameters().reduce((s, t) => s + t.size, 0), parameterCount(cfg));
    logits.dispose();
    model.dispose();
  });

  for (const deferred of variant.attentionBias ? [true, false] : [true]) {
    // deferred: the bias's gradient rides the pass's deferred sums; else one column sum of its own
    const how = deferred ? "" : " (deferred gradient sums off)";
    Deno.test(`transformer ${label}: gradients match finite differences of the float64 loss${how}`, async () => {
      await initTensors();
      setDeferredGradSums(deferred);
      try {
        const model = Transformer.init(cfg, { seed: 9, std: 0.3 });
        randomBiases(model, 8);
        const rng = new Rng(7);
        const B = 2, T = 5;
        const { tokens, targets } = batch(rng, B, T, cfg.vocabSize);
        const loss = tidy(() => {
          const l = model.loss(
            tensor(new Int32Array(tokens.flatMap((t) => [...t])), [B, T]),
            tensor(new Int32Array(targets.flatMap((t) => [...t])), [B, T]),
          );
          l.backward();
          return l;
        });
        const named = model.namedParameters();
        // by HF name: rows of the joined q/k/v and gate/up gradients for the projections
        const byName = tidy(() => [...model.namedGradients().values()].map((g) => g!));
        const grads = await readAll([loss, ...byName]);
        byName.forEach((g) => g.dispose());
        const p = await hostParams(model);
        const ref = referenceLoss(cfg, p, tokens, targets);
        assert.ok(Math.abs(grads[0][0] - ref) < 1e-5, `loss ${grads[0][0]} vs ${ref}`);
        const h = 1e-5;
        let checked = 0;
        [...named.keys()].forEach((name, i) => {
          const w = p.get(name)!;
          const g = grads[i + 1];
          // every element of a bias (few), three random ones of anything else
          const bias = name.endsWith(".bias");
          for (let trial = 0; trial < (bias ? w.length : 3); trial++) {
            const j = bias ? trial : rng.int(w.length);
            const keep = w[j];
            w[j] = keep + h;
            const up = referenceLoss(cfg, p, tokens, targets);
            w[j] = keep - h;
            const dn = referenceLoss(cfg, p, tokens, targets);
            w[j] = keep;
            const fd = (up - dn) / (2 * h);
            assert.ok(
              Math.abs(fd - g[j]) < 2e-4 + 2e-2 * Math.abs(fd),
              `d loss / d ${name}[${j}]: GPU ${g[j]} vs finite difference ${fd}`,
            );
            checked++;
          }
        });
        assert.ok(checked > 20);
        loss.dispose();
        model.dispose();
      } finally {
        setDeferredGradSums(true);
      }
    });
  }
}
