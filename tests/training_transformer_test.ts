// A one-layer Qwen-style language model (embedding → RMSNorm → GQA attention with RoPE → SwiGLU →
// RMSNorm → logits → fused cross-entropy) memorises a fixed token stream: the loss falls from ln V
// to a small value, every step is one submit with no readback, and the pool stops growing.
import assert from "node:assert/strict";
import { AdamW, ops, warmupCosine } from "../src/autograd/mod.ts";
import { item, ones, randn, runtime, type Tensor, tensor, tidy } from "../src/tensor/mod.ts";
import { assertNoGpuErrors, setup } from "./autograd_util.ts";

const [B, T, C, Hq, Hkv, D, F, V] = [2, 16, 32, 4, 2, 8, 64, 48];

function model(seed: number) {
  let stream = 0;
  const w = (shape: number[], std = 0.05) => randn(shape, { seed, stream: stream++, std });
  const p = {
    wte: w([V, C]),
    g1: ones([C]),
    wq: w([C, Hq * D]),
    wk: w([C, Hkv * D]),
    wv: w([C, Hkv * D]),
    wo: w([Hq * D, C]),
    g2: ones([C]),
    wg: w([C, F]),
    wu: w([C, F]),
    wd: w([F, C]),
    gf: ones([C]),
    head: w([C, V]),
  };
  const params: Tensor[] = Object.values(p);
  for (const t of params) t.requiresGrad = true;
  const logits = (ids: Tensor) => {
    const x = ops.embedding(p.wte, ids);
    const h = ops.rmsNorm(x, p.g1);
    const q = ops.rope(h.matmul(p.wq).reshape([B, T, Hq, D]));
    const k = ops.rope(h.matmul(p.wk).reshape([B, T, Hkv, D]));
    const v = h.matmul(p.wv).reshape([B, T, Hkv, D]);
    const r1 = x.add(ops.causalSelfAttention(q, k, v).reshape([B, T, Hq * D]).matmul(p.wo));
    const h2 = ops.rmsNorm(r1, p.g2);
    const r2 = r1.add(h2.matmul(p.wg).silu().mul(h2.matmul(p.wu)).matmul(p.wd));
    return ops.rmsNorm(r2, p.gf).matmul(p.head);
  };
  return { params, logits };
}

Deno.test("a one-layer transformer memorises a token stream; one submit per step, stable pool", async () => {
  const rt = await setup();
  const stream = Array.from({ length: B * (T + 1) }, (_, i) => (i * 7 + (i >> 2)) % V);
  const inputs = new Int32Array(B * T), targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      inputs[b * T + t] = stream[b * (T + 1) + t];
      targets[b * T + t] = t === 0 ? -100 : stream[b * (T + 1) + t + 1]; // first target ignored
    }
  }
  const ids = tensor(inputs, [B, T]);
  const tgt = tensor(targets, [B, T]);
  const m = model(3);
  const steps = 80;
  const opt = new AdamW(m.params, {
    lr: warmupCosine({ lr: 1e-2, warmup: 5, total: steps, minLr: 1e-3 }),
    maxGradNorm: 1,
  });
  const step = () =>
    tidy(() => {
      const loss = ops.crossEntropy(m.logits(ids), tgt);
      loss.backward();
      opt.step();
      opt.zeroGrad();
      return loss;
    });
  const first = step();
  const firstLoss = await item(first);
  first.dispose();
  assert.ok(Math.abs(firstLoss - Math.log(V)) < 0.5, `initial loss ${firstLoss} near ln V`);
  let stats = rt.pool.stats();
  let last: Tensor | null = null;
  for (let s = 1; s < steps; s++) {
    last?.dispose();
    const { submits, reads } = rt.counters;
    last = step();
    rt.flush();
    assert.equal(rt.counters.submits, submits + 1);
    assert.equal(rt.counters.reads, reads);
    if (s === 1) stats = rt.pool.stats();
  }
  const end = rt.pool.stats();
  assert.equal(end.totalBytes, stats.totalBytes, "no allocation after the second step");
  assert.equal(end.liveBytes, stats.liveBytes);
  const finalLoss = await item(last!);
  console.log(`loss ${firstLoss.toFixed(3)} → ${finalLoss.toFixed(4)} in ${steps} steps`);
  assert.ok(finalLoss < 0.3, `loss ${firstLoss} → ${finalLoss}`);
  assert.ok(runtime().counters.dispatches > 0);
  assertNoGpuErrors();
});
