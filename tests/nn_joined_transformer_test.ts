// The transformer's joined projections (q/k/v as one [(Hq+2Hkv)·D, C] parameter, gate/up as one
// [2I, C]) against the computation they replace: separate products against separate HF tensors.
// Loss and every HF tensor's gradient agree, and so does one AdamW step (clipping and weight
// decay); init draws each HF tensor as before (seed and stream per name); HF tensors round-trip
// bitwise through fromTensors/toCheckpoint; the joined step records fewer dispatches. Configs
// cover the scalar and vec4 kernels, views at offsets no binding can start at, GQA and MHA,
// QK-norm on and off, tied and untied heads.
import assert from "node:assert/strict";
import { AdamW, ops } from "../src/autograd/mod.ts";
import { randn, readAll, runtime, type Tensor, tensor, tidy } from "../src/tensor/mod.ts";
import {
  EMBED_TOKENS,
  FINAL_NORM,
  type HostTensor,
  LM_HEAD,
  qwenBiasNames,
  qwenLayerNames,
  qwenTensorSpecs,
} from "../src/nn/checkpoint/mod.ts";
import { type ModelConfig, toQwenConfig, validateModelConfig } from "../src/nn/config.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { Rng } from "../src/util/rng.ts";
import { assertClose, assertNoGpuErrors, setup } from "./autograd_util.ts";

await setup();

const BASE: ModelConfig = {
  vocabSize: 19,
  hidden: 10,
  layers: 2,
  heads: 3,
  kvHeads: 1,
  headDim: 6,
  intermediate: 7,
  maxSeqLen: 16,
  ropeTheta: 10000,
  normEps: 1e-6,
  tiedEmbeddings: true,
  qkNorm: true,
};

const CONFIGS: [string, Partial<ModelConfig>][] = [
  // widths 18/6/6 and I = 7: scalar split and SwiGLU; k_proj starts at element 180 of wQkv
  ["scalar kernels, misaligned views", {}],
  // widths 32/16/16 and I = 48: the vec4 kernels; untied head
  ["vec4 kernels, untied", {
    hidden: 32,
    heads: 4,
    kvHeads: 2,
    headDim: 8,
    intermediate: 48,
    tiedEmbeddings: false,
  }],
  // multi-head (kvHeads = heads), no QK-norm
  ["MHA without QK-norm", { heads: 2, kvHeads: 2, headDim: 4, qkNorm: false, intermediate: 12 }],
];

// The block as it was before the projections were joined: three products for q, k, v and two
// for gate, up, each against its own HF tensor.
function separateLoss(
  cfg: ModelConfig,
  P: Map<string, Tensor>,
  tokens: Tensor,
  targets: Tensor,
): Tensor {
  const q = toQwenConfig(cfg);
  const { heads: Hq, kvHeads: Hkv, headDim: D, normEps: eps } = cfg;
  const [B, T] = tokens.shape;
  const w = (n: string) => ops.transpose(P.get(n)!);
  let x = ops.embedding(P.get(EMBED_TOKENS)!, tokens);
  for (let l = 0; l < cfg.layers; l++) {
    const n = qwenLayerNames(q, l);
    const h = ops.rmsNorm(x, P.get(n.inputLayernorm)!, eps);
    let qh = ops.reshape(ops.matmul(h, w(n.qProj)), [B, T, Hq, D]);
    let kh = ops.reshape(ops.matmul(h, w(n.kProj)), [B, T, Hkv, D]);
    const vh = ops.reshape(ops.matmul(h, w(n.vProj)), [B, T, Hkv, D]);
    if (n.qNorm && n.kNorm) {
      qh = ops.rmsNorm(qh, P.get(n.qNorm)!, eps);
      kh = ops.rmsNorm(kh, P.get(n.kNorm)!, eps);
    }
    qh = ops.rope(qh, { base: cfg.ropeTheta });
    kh = ops.rope(kh, { base: cfg.ropeTheta });
    const att = ops.reshape(ops.causalSelfAttention(qh, kh, vh), [B, T, Hq * D]);
    x = ops.add(x, ops.matmul(att, w(n.oProj)));
    const h2 = ops.rmsNorm(x, P.get(n.postAttentionLayernorm)!, eps);
    const gated = ops.swiglu(ops.matmul(h2, w(n.gateProj)), ops.matmul(h2, w(n.upProj)));
    x = ops.add(x, ops.matmul(gated, w(n.downProj)));
  }
  const logits = ops.matmul(
    ops.rmsNorm(x, P.get(FINAL_NORM)!, eps),
    w(cfg.tiedEmbeddings ? EMBED_TOKENS : LM_HEAD),
  );
  return ops.crossEntropy(logits, targets, { ignoreIndex: -1 });
}

// Random HF tensors (norm weights too, so a swapped norm shows) and a batch with ignored targets.
function problem(cfg: ModelConfig, seed: number) {
  const rng = new Rng(seed);
  const hf = new Map<string, HostTensor>();
  for (const [name, shape] of Transformer.shapes(cfg)) {
    const n = shape.reduce((p, d) => p * d, 1);
    const data = Float32Array.from(
      { length: n },
      () => shape.length === 1 ? 0.5 + rng.uniform() : 0.3 * rng.normal(),
    );
    hf.set(name, { shape, data });
  }
  const B = 2, T = 7;
  const ids = Int32Array.from({ length: B * T }, () => rng.int(cfg.vocabSize));
  const tgt = Int32Array.from(ids, (v, i) => (i % T === 0 ? -1 : (v * 3 + i) % cfg.vocabSize));
  return { hf, B, T, ids, tgt };
}

function separateLeaves(hf: Map<string, HostTensor>): Map<string, Tensor> {
  const P = new Map<string, Tensor>();
  for (const [name, t] of hf) {
    const leaf = tensor(Float32Array.from(t.data as Float32Array), [...t.shape]);
    leaf.requiresGrad = true;
    P.set(name, leaf);
  }
  return P;
}

for (const [label, over] of CONFIGS) {
  const cfg = validateModelConfig({ ...BASE, ...over });

  Deno.test(`joined ${label}: loss and every HF gradient equal the separate products'`, async () => {
    const { hf, B, T, ids, tgt } = problem(cfg, 5);
    const model = Transformer.fromTensors(cfg, hf);
    const P = separateLeaves(hf);
    const tokens = tensor(ids, [B, T]), targets = tensor(tgt, [B, T]);
    const [lj, ls] = [
      tidy(() => {
        const l = model.loss(tokens, targets);
        l.backward();
        return l;
      }),
      tidy(() => {
        const l = separateLoss(cfg, P, tokens, targets);
        l.backward();
        return l;
      }),
    ];
    const names = [...P.keys()];
    const joinedGrads = tidy(() => names.map((n) => model.namedGradients().get(n)!));
    const got = await readAll([lj, ls, ...joinedGrads, ...names.map((n) => P.get(n)!.grad!)]);
    assertNoGpuErrors();
    assertClose("loss", got[0], got[1], 1e-6, 1e-5);
    names.forEach((n, i) => {
      const a = got[2 + i], b = got[2 + names.length + i];
      assert.ok(b.some((v) => v !== 0), `${n} has a gradient`);
      assertClose(`d loss / d ${n}`, a, b, 1e-6, 1e-4);
    });
    [lj, ls, tokens, targets, ...joinedGrads, ...P.values()].forEach((t) => t.dispose());
    model.dispose();
  });

  Deno.test(`joined ${label}: one AdamW step (clipping, weight decay) moves every HF tensor as before`, async () => {
    const { hf, B, T, ids, tgt } = problem(cfg, 8);
    const model = Transformer.fromTensors(cfg, hf);
    const P = separateLeaves(hf);
    const opts = { lr: 1e-2, weightDecay: 0.1, maxGradNorm: 0.5 };
    const optJ = new AdamW(model.parameters(), opts);
    const optS = new AdamW([...P.values()], opts);
    assert.equal(optJ.packed, true, "the joined parameters share one arena");
    const tokens = tensor(ids, [B, T]), targets = tensor(tgt, [B, T]);
    tidy(() => {
      model.loss(tokens, targets).backward();
      optJ.step();
      separateLoss(cfg, P, tokens, targets).backward();
      optS.step();
    });
    const named = model.namedParameters();
    const names = [...P.keys()];
    const got = await readAll([
      optJ.gradNorm,
      optS.gradNorm,
      ...names.map((n) => named.get(n)!),
      ...names.map((n) => P.get(n)!),
    ]);
    assertNoGpuErrors();
    assertClose("gradient norm", got[0], got[1], 1e-6, 1e-5);
    assert.ok(got[0][0] > opts.maxGradNorm, "the step was clipped");
    names.forEach((n, i) => {
      const before = hf.get(n)!.data as Float32Array;
      const a = got[2 + i], b = got[2 + names.length + i];
      assert.ok(a.some((v, j) => v !== before[j]), `${n} moved`);
      // Adam's first step is lr·g/(|g| + eps): for a gradient near eps, the rounding difference
      // of the fused ops (QK-norm with RoPE, residual add with RMSNorm) moves the update by up to
      // ~1e-3·lr, where the gradients themselves agree to 1e-4 relative (above)
      assertClose(`${n} after one step`, a, b, 2e-3 * opts.lr, 1e-4);
    });
    [tokens, targets, ...P.values()].forEach((t) => t.dispose());
    optJ.dispose();
    optS.dispose();
    model.dispose();
  });

  Deno.test(`joined ${label}: HF tensors round-trip bitwise through fromTensors and toCheckpoint`, async () => {
    const { hf } = problem(cfg, 13);
    const model = Transformer.fromTensors(cfg, hf);
    const ck = await model.toCheckpoint();
    // Checkpoint order; a model without QK-norm (qwen2) also gets zero q/k/v biases.
    assert.deepEqual(
      [...ck.tensors.keys()],
      qwenTensorSpecs(toQwenConfig(cfg)).map((s) => s.name),
    );
    for (const name of qwenBiasNames(ck.config)) {
      assert.ok(ck.tensors.get(name)!.data.every((v) => v === 0), name);
    }
    assert.equal(qwenBiasNames(ck.config).length > 0, !cfg.qkNorm);
    for (const [name, t] of hf) {
      const back = ck.tensors.get(name)!;
      assert.deepEqual(back.shape, t.shape, name);
      assert.deepEqual(back.data, t.data, name);
    }
    model.dispose();
    assertNoGpuErrors();
  });
}

Deno.test("init draws every HF tensor from its own stream, as before the projections were joined", async () => {
  const cfg = validateModelConfig({ ...BASE, ...CONFIGS[1][1] });
  const seed = 21, std = 0.05;
  const model = Transformer.init(cfg, { seed, std });
  const named = model.namedParameters();
  const residual = std / Math.sqrt(2 * cfg.layers);
  // stream i + 1 for the i-th HF tensor in checkpoint order; o_proj/down_proj at std/√(2L)
  const want = tidy(() =>
    [...Transformer.shapes(cfg)].map(([name, shape], i) =>
      shape.length === 1 ? null : randn(shape, {
        seed,
        stream: i + 1,
        std: /o_proj|down_proj/.test(name) ? residual : std,
      })
    )
  );
  const got = await readAll([...named.values()]);
  const ref = await readAll(want.filter((t): t is Tensor => t !== null));
  let k = 0;
  [...named.keys()].forEach((name, i) => {
    if (want[i] === null) assert.ok(got[i].every((v) => v === 1), `${name} starts at 1`);
    else assert.deepEqual(got[i], ref[k++], name);
  });
  want.forEach((t) => t?.dispose());
  model.dispose();
  assertNoGpuErrors();
});

Deno.test("a joined training step records fewer dispatches than the separate products", () => {
  const rt = runtime();
  const cfg = validateModelConfig({ ...BASE, ...CONFIGS[1][1] });
  const { hf, B, T, ids, tgt } = problem(cfg, 3);
  const model = Transformer.fromTensors(cfg, hf);
  const P = separateLeaves(hf);
  const tokens = tensor(ids, [B, T]), targets = tensor(tgt, [B, T]);
  const count = (loss: () => Tensor) => {
    tidy(() => loss().backward()); // first use: the leaves' gradients are created
    const before = rt.counters.dispatches;
    tidy(() => loss().backward());
    return rt.counters.dispatches - before;
  };
  const joined = count(() => model.loss(tokens, targets));
  const separate = count(() => separateLoss(cfg, P, tokens, targets));
  console.log(`forward + backward: ${joined} dispatches joined, ${separate} separate`);
  // per layer: q/k/v take 1 product forward (3 before) and 2 backward (6), gate/up 1 and 2 (2 and
  // 4), and the 3 adds of the products' input gradients are gone; the split and its join add 2
  assert.ok(joined <= separate - 10 * cfg.layers, `${joined} vs ${separate}`);
  [tokens, targets, ...P.values()].forEach((t) => t.dispose());
  model.dispose();
  assertNoGpuErrors();
});

Deno.test("disposing the model, or its parameters one by one, returns every buffer", async () => {
  const rt = runtime();
  const cfg = validateModelConfig({ ...BASE, ...CONFIGS[1][1] });
  await readAll([tensor(new Float32Array(1), [1])]); // settle the pool
  for (const byParameter of [false, true]) {
    const before = rt.pool.stats().liveBuffers;
    const model = Transformer.init(cfg, { seed: 1 });
    tidy(() => model.namedGradients()); // views of no gradients yet
    const ck = await model.toCheckpoint();
    assert.equal(ck.tensors.size, Transformer.shapes(cfg).size);
    if (byParameter) model.parameters().forEach((p) => p.dispose());
    else model.dispose();
    assert.equal(rt.pool.stats().liveBuffers, before, byParameter ? "by parameter" : "model");
  }
  assertNoGpuErrors();
});
