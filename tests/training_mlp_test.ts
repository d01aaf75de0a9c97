// Small end-to-end training runs: an MLP learns XOR and a smooth regression to stated losses, two
// independent models train at once without touching each other, and 200 steps leave the pool's
// memory where it was after the first ones.
import assert from "node:assert/strict";
import { AdamW, ops } from "../src/autograd/mod.ts";
import {
  item,
  randn,
  readAll,
  runtime,
  type Tensor,
  tensor,
  tidy,
  zeros,
} from "../src/tensor/mod.ts";
import { assertNoGpuErrors, setup } from "./autograd_util.ts";

interface Mlp {
  params: Tensor[];
  forward(x: Tensor): Tensor;
}

function mlp(sizes: number[], seed: number): Mlp {
  const params: Tensor[] = [];
  for (let i = 0; i + 1 < sizes.length; i++) {
    const w = randn([sizes[i], sizes[i + 1]], {
      seed,
      stream: 2 * i,
      std: 1 / Math.sqrt(sizes[i]),
    });
    const b = zeros([sizes[i + 1]]);
    w.requiresGrad = b.requiresGrad = true;
    params.push(w, b);
  }
  return {
    params,
    forward(x) {
      let h = x;
      for (let i = 0; i < params.length; i += 2) {
        h = h.matmul(params[i]).add(params[i + 1]);
        if (i + 2 < params.length) h = h.silu();
      }
      return h;
    },
  };
}

const XOR_X = [0, 0, 0, 1, 1, 0, 1, 1];
const XOR_Y = [0, 1, 1, 0];

function regressionData(n: number) {
  const x: number[] = [], y: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = Math.cos(i * 1.7) * 1.5, b = Math.sin(i * 0.9 + 1) * 1.5;
    x.push(a, b);
    y.push(0.5 * a - b + 0.3 * a * b);
  }
  return { x, y };
}

Deno.test("an MLP learns XOR (cross-entropy < 0.05) and a regression (MSE < 1% of the target variance)", async () => {
  await setup();
  const xor = mlp([2, 16, 2], 1);
  const x = tensor(XOR_X, [4, 2]);
  const y = tensor(new Int32Array(XOR_Y));
  const opt = new AdamW(xor.params, { lr: 0.05, weightDecay: 0 });
  const rt = runtime();
  let loss: Tensor | null = null;
  for (let step = 0; step < 150; step++) {
    loss?.dispose();
    const submits = rt.counters.submits, reads = rt.counters.reads;
    loss = tidy(() => {
      const l = ops.crossEntropy(xor.forward(x), y);
      l.backward();
      opt.step();
      opt.zeroGrad();
      return l;
    });
    rt.flush();
    assert.equal(rt.counters.submits, submits + 1, "one submit per training step");
    assert.equal(rt.counters.reads, reads, "no readback inside a step");
  }
  const [l, logits] = await readAll([loss!, tidy(() => xor.forward(x))]);
  assert.ok(l[0] < 0.05, `XOR loss ${l[0]}`);
  for (let i = 0; i < 4; i++) assert.equal(logits[2 * i + 1] > logits[2 * i] ? 1 : 0, XOR_Y[i]);

  const { x: rx, y: ry } = regressionData(64);
  const mean = ry.reduce((s, v) => s + v, 0) / ry.length;
  const variance = ry.reduce((s, v) => s + (v - mean) ** 2, 0) / ry.length;
  const reg = mlp([2, 32, 1], 2);
  const X = tensor(rx, [64, 2]), Y = tensor(ry, [64, 1]);
  const opt2 = new AdamW(reg.params, { lr: 0.02, weightDecay: 0 });
  for (let step = 0; step < 300; step++) {
    tidy(() => {
      reg.forward(X).sub(Y).pow(2).mean().backward();
      opt2.step();
      opt2.zeroGrad();
    });
  }
  const mse = await item(tidy(() => reg.forward(X).sub(Y).pow(2).mean()));
  assert.ok(mse < 0.01 * variance, `regression MSE ${mse} vs variance ${variance}`);
  assertNoGpuErrors();
});

Deno.test("two models with their own parameters train at once exactly as they train alone", async () => {
  await setup();
  const x = tensor(XOR_X, [4, 2]);
  const y = tensor(new Int32Array(XOR_Y));
  const { x: rx, y: ry } = regressionData(16);
  const X = tensor(rx, [16, 2]), Y = tensor(ry, [16, 1]);
  const run = async (which: "a" | "b" | "both") => {
    const a = mlp([2, 8, 2], 5), b = mlp([2, 8, 1], 6);
    const oa = new AdamW(a.params, { lr: 0.05 }), ob = new AdamW(b.params, { lr: 0.05 });
    for (let step = 0; step < 20; step++) {
      tidy(() => {
        const la = which !== "b" ? ops.crossEntropy(a.forward(x), y) : null;
        const lb = which !== "a" ? b.forward(X).sub(Y).pow(2).mean() : null;
        la?.backward();
        lb?.backward();
        if (la) oa.step();
        if (lb) ob.step();
        oa.zeroGrad();
        ob.zeroGrad();
      });
    }
    const out = await readAll([...a.params, ...b.params]);
    [...a.params, ...b.params].forEach((p) => p.dispose());
    oa.dispose();
    ob.dispose();
    return out;
  };
  const alone = [...(await run("a")).slice(0, 4), ...(await run("b")).slice(4)];
  const both = await run("both");
  both.forEach((p, i) => assert.deepEqual([...p], [...alone[i]], `parameter ${i}`));
  const untouched = await run("a");
  const init = mlp([2, 8, 1], 6);
  const initVals = await readAll(init.params);
  untouched.slice(4).forEach((p, i) =>
    assert.deepEqual([...p], [...initVals[i]], "b untouched when only a trains")
  );
  assertNoGpuErrors();
});

Deno.test("200 training steps: the pool's live and total bytes stop growing after the first step", async () => {
  const rt = await setup();
  const net = mlp([8, 32, 32, 4], 9);
  const x = randn([16, 8], { seed: 3 });
  const y = tensor(new Int32Array(Array.from({ length: 16 }, (_, i) => i % 4)));
  const opt = new AdamW(net.params, { lr: 1e-2, maxGradNorm: 1 });
  const step = () =>
    tidy(() => {
      ops.crossEntropy(net.forward(x), y).backward();
      opt.step();
      opt.zeroGrad();
    });
  step();
  rt.flush();
  const first = rt.pool.stats();
  const samples: number[] = [];
  for (let i = 1; i < 200; i++) {
    step();
    rt.flush();
    if (i % 50 === 0) samples.push(rt.pool.stats().totalBytes);
  }
  const last = rt.pool.stats();
  assert.equal(
    last.liveBytes,
    first.liveBytes,
    "live bytes after step 200 equal those after step 1",
  );
  assert.equal(last.totalBytes, first.totalBytes, "no new allocation after step 1");
  assert.equal(last.created, first.created, "no buffer created after step 1");
  assert.ok(samples.every((s) => s === first.totalBytes));
  const loss = await item(tidy(() => ops.crossEntropy(net.forward(x), y)));
  assert.ok(Number.isFinite(loss) && loss < Math.log(4), `loss ${loss} went down from ln 4`);
  console.log(
    `pool after 200 steps: live ${last.liveBytes} B, total ${last.totalBytes} B, ${last.created} buffers created`,
  );
  assertNoGpuErrors();
});
