// Misuse and memory: released parameters and gradients, bad options (clear errors naming the op,
// never a silent NaN or a wrapped value), and ops used outside tidy releasing their temporaries.
import assert from "node:assert/strict";
import { ops } from "../src/autograd/mod.ts";
import { arr } from "../src/autograd/reference.ts";
import { readAll, type Tensor, tensor, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { assertNoGpuErrors, assertSame, randArr, setup, up } from "./autograd_util.ts";

Deno.test("AdamW: a released parameter, a repeated parameter and bad hyper-parameters are clear errors", async () => {
  await setup();
  const { AdamW } = await import("../src/autograd/mod.ts");
  const w = up(arr([1, 2, 3], [3]), true);
  const v = up(arr([4, 5, 6], [3]), true);
  const opt = new AdamW([w, v], { lr: 0.1 });
  tidy(() => w.mul(v).sum().backward());
  w.dispose(); // its gradient goes with it: step() used to skip it silently and update v alone
  assert.throws(() => opt.step(), /AdamW: parameter 0 .* was released/);
  assert.throws(() => opt.zeroGrad(), /AdamW: parameter 0 .* was released/);
  assert.equal(opt.stepCount, 0, "a refused step is not counted");
  opt.dispose();
  // the same tensor twice would be updated twice per step
  assert.throws(() => new AdamW([v, v], { lr: 0.1 }), /AdamW: parameter 1 .* repeats parameter 0/);
  for (
    const [o, re] of [
      [{ beta1: 1 }, /beta1/],
      [{ beta2: -0.1 }, /beta2/],
      [{ eps: -1 }, /eps/],
      [{ weightDecay: -0.01 }, /weightDecay/],
      [{ maxGradNorm: NaN }, /maxGradNorm/],
    ] as const
  ) {
    assert.throws(() => new AdamW([v], { lr: 0.1, ...o }), re);
  }
  // clipping with all-zero gradients: norm 0 and scale 1, no NaN; decoupled decay still applies
  // to a 1-D parameter when asked to
  const z = up(arr([1, -2, 3, 0.5, 7], [5]), true);
  const opt2 = new AdamW([z], { lr: 0.1, maxGradNorm: 1, weightDecay: 0.5, decay: () => true });
  tidy(() => {
    z.mul(0).sum().backward();
    opt2.step();
  });
  const [zv, norm] = await readAll([z, opt2.gradNorm]);
  assertSame("zero-gradient step", zv, [1, -2, 3, 0.5, 7].map((p) => Math.fround(p) * (1 - 0.05)));
  assertSame("norm and scale", norm, [0, 1]);
  opt2.dispose();
  z.dispose();
  v.dispose();
});

Deno.test("an op's temporaries are released with its result outside tidy (explicit dispose leaks nothing)", async () => {
  const rt = await setup();
  const rng = new Rng(5);
  const x = up(randArr(rng, [4, 6]), true);
  const table = up(randArr(rng, [5, 6]));
  const ids = tensor(new Int32Array([0, 3, 1, 4]));
  const mask = up(arr([1, 0, 1, 0, 1, 0], [6]));
  const q = up(randArr(rng, [1, 3, 2, 4])), kv = up(randArr(rng, [1, 3, 1, 4]));
  const w = up(randArr(rng, [2, 4, 3]));
  const zeros6 = tensor(new Int32Array(6)), ones4 = up(arr([1, 2, 3, 4], [4]));
  const cases: Array<[string, () => Tensor]> = [
    ["exp of a transposed view", () => ops.exp(ops.transpose(x))],
    ["reshape of a transposed view", () => ops.reshape(x.transpose(), [24])],
    ["softmax over axis 0", () => x.softmax(0)],
    ["logSoftmax of a slice", () => ops.logSoftmax(ops.slice(x, 1, 1, 5))],
    ["crossEntropy (mean)", () => ops.crossEntropy(x, ids)],
    [
      "crossEntropy (none) of a transposed view",
      () =>
        ops.crossEntropy(ops.transpose(ops.slice(x, 0, 0, 3)), zeros6, {
          reduction: "none",
        }),
    ],
    ["gatherLast of a slice", () => ops.gatherLast(ops.slice(x, 1, 1, 6), ids)],
    ["maximum with a number", () => ops.maximum(x, 0.5)],
    ["where with a number", () => ops.where(mask, x, 0)],
    ["embedding of a strided table", () => ops.embedding(table.transpose().transpose(), ids)],
    ["rmsNorm of a transposed view", () => ops.rmsNorm(x.transpose(), ones4)],
    ["max over axis 1 (keepDims)", () => x.max(1, true)],
    ["matmul with batch broadcasting", () => ops.matmul(x.slice(1, 0, 4), w)],
    ["causal self-attention", () => ops.causalSelfAttention(q, kv, kv)],
    ["concat of views", () => ops.concat([x.transpose(), x.transpose()], 1)],
  ];
  ops.causalSelfAttention(q, kv, kv).dispose(); // builds its cached causal mask (kept by design)
  for (const [name, fn] of cases) {
    const before = rt.pool.stats().liveBuffers;
    const y = fn();
    await readAll([y]);
    y.dispose();
    assert.equal(rt.pool.stats().liveBuffers - before, 0, `${name}: buffers left after dispose`);
  }
  assertNoGpuErrors();
  // inside tidy nothing changes: the backward still reaches every saved tensor
  const gradOk = tidy(() => {
    const l = ops.crossEntropy(ops.rmsNorm(x.transpose(), ones4), zeros6);
    l.backward();
    return l;
  });
  const [lv, gx] = await readAll([gradOk, x.grad!]);
  assert.ok(Number.isFinite(lv[0]) && gx.some((v) => v !== 0), "loss and gradient computed");
  for (const t of [gradOk, x, table, ids, mask, q, kv, w, zeros6, ones4]) t.dispose();
});

Deno.test("backward: an output gradient of the wrong dtype or a released one is a clear error", async () => {
  await setup();
  const x = up(arr([1, 2], [2]), true);
  const y = ops.mul(x, 2);
  const ids = tensor(new Int32Array([1, 1]));
  assert.throws(() => y.backward(ids), /backward: expected a f32 tensor, got Tensor i32 \[2\]/);
  const g = up(arr([1, 1], [2]));
  g.dispose();
  assert.throws(() => y.backward(g), /backward: .* was used after release/);
  for (const t of [x, y, ids]) t.dispose();
});

Deno.test("randn/randu: a seed or stream that is not a u32, or a non-finite parameter, is an error", async () => {
  await setup();
  const { randn, randu } = await import("../src/tensor/mod.ts");
  // -1.5 used to wrap to another seed's draws silently
  assert.throws(
    () => randn([2], { seed: -1.5 }),
    /randn: seed -1.5 must be an integer in \[0, 2\^32\)/,
  );
  assert.throws(() => randn([2], { seed: 2 ** 32 }), /randn: seed/);
  assert.throws(() => randu([2], { seed: 1, stream: -1 }), /randu: stream -1/);
  assert.throws(() => randn([2], { seed: 1, std: NaN }), /randn: std NaN must be finite/);
  assert.throws(() => randu([2], { seed: 1, hi: Infinity }), /randu: hi Infinity must be finite/);
  const ok = randn([2], { seed: 2 ** 32 - 1, stream: 7 });
  assert.equal((await readAll([ok]))[0].length, 2);
  ok.dispose();
});

Deno.test("crossEntropy: a fractional ignoreIndex or an unknown reduction is an error", async () => {
  await setup();
  const x = up(arr([0, 1, 2, 3], [2, 2]));
  const t = tensor(new Int32Array([1, 0]));
  assert.throws(
    () => ops.crossEntropy(x, t, { ignoreIndex: 1.5 }),
    /ignoreIndex 1.5 must be an i32/,
  );
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => ops.crossEntropy(x, t, { reduction: "avg" as any }),
    /reduction "avg" must be "mean", "sum" or "none"/,
  );
  for (const v of [x, t]) v.dispose();
});

Deno.test("rmsNorm/layerNorm eps and rope options out of range are errors, not NaN or a wrapped offset", async () => {
  await setup();
  const x = up(arr([1, 2, 3, 4], [1, 1, 1, 4]));
  const w = up(arr([1, 1, 1, 1], [4])), b = up(arr([0, 0, 0, 0], [4]));
  assert.throws(() => ops.rmsNorm(x, w, -1), /rmsNorm: eps -1 must be finite and >= 0/);
  assert.throws(() => ops.layerNorm(x, w, b, NaN), /layerNorm: eps NaN/);
  assert.throws(
    () => ops.rope(x, { offset: -1 }),
    /rope: offset -1 must be a non-negative integer/,
  );
  assert.throws(() => ops.rope(x, { base: 0 }), /rope: base 0 must be finite and > 0/);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => ops.rope(x, { layout: "bhdt" as any }), /rope: layout "bhdt"/);
  for (const t of [x, w, b]) t.dispose();
});
