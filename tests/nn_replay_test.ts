import assert from "node:assert/strict";
import { initTensors, readAll, tensor, tidy } from "../src/tensor/mod.ts";
import { ops } from "../src/autograd/mod.ts";
import { sampledLogProbs } from "../src/nn/replay.ts";
import { processedLogProbs, type SamplingSettings } from "../src/nn/sampling_reference.ts";
import { Rng } from "../src/util/rng.ts";

const SETTINGS: SamplingSettings[] = [
  { temperature: 1, topK: 0, topP: 1 },
  { temperature: 0.6, topK: 5, topP: 1 },
  { temperature: 1.4, topK: 0, topP: 0.7 },
  { temperature: 0.8, topK: 9, topP: 0.85 },
  { temperature: 0, topK: 0, topP: 1 },
];

function rows(rng: Rng, N: number, V: number, ties: boolean): Float32Array {
  return Float32Array.from({ length: N * V }, (_, i) => {
    const v = rng.normal() * 2;
    return ties && (i % 3 === 0) ? Math.round(v) : v;
  });
}

Deno.test("sampledLogProbs replays the processed distribution (forward vs the float64 reference)", async () => {
  await initTensors();
  const rng = new Rng(3);
  for (const V of [23, 600]) {
    for (const s of SETTINGS) {
      const N = 7;
      const x = rows(rng, N, V, true);
      const toks = Int32Array.from({ length: N }, (_, n) => (n === 0 ? 0 : rng.int(V)));
      // Half the rows ask for the top token, which every truncation keeps.
      for (let n = 1; n < N; n += 2) {
        const row = x.subarray(n * V, (n + 1) * V);
        toks[n] = row.indexOf(Math.max(...row));
      }
      const out = tidy(() => sampledLogProbs(tensor(x, [N, V]), tensor(toks, [N]), s));
      const [got] = await readAll([out]);
      out.dispose();
      for (let n = 0; n < N; n++) {
        const want = processedLogProbs(x.subarray(n * V, (n + 1) * V), s)[toks[n]];
        if (want === -Infinity) assert.equal(got[n], -Infinity, `row ${n} ${JSON.stringify(s)}`);
        else {assert.ok(
            Math.abs(got[n] - want) < 1e-5,
            `row ${n}: ${got[n]} vs ${want} ${JSON.stringify(s)}`,
          );}
      }
    }
  }
});

Deno.test("sampledLogProbs gradient matches finite differences (kept set fixed)", async () => {
  await initTensors();
  const rng = new Rng(8);
  const N = 4, V = 17;
  for (const s of SETTINGS.slice(0, 4)) {
    const x = rows(rng, N, V, false);
    const toks = Int32Array.from({ length: N }, (_, n) => {
      const lp = processedLogProbs(x.subarray(n * V, (n + 1) * V), s);
      const kept = [...lp.keys()].filter((i) => lp[i] > -Infinity);
      return kept[rng.int(kept.length)];
    });
    const w = Float64Array.from({ length: N }, () => rng.normal());
    const xt = tensor(x, [N, V]);
    xt.requiresGrad = true;
    tidy(() => {
      const lp = sampledLogProbs(xt, tensor(toks, [N]), s);
      ops.sum(ops.mul(lp, tensor(Float32Array.from(w), [N]))).backward();
    });
    const [g] = await readAll([xt.grad!]);
    const f = (xs: Float64Array) => {
      let t = 0;
      for (let n = 0; n < N; n++) {
        t += w[n] * processedLogProbs(xs.subarray(n * V, (n + 1) * V), s)[toks[n]];
      }
      return t;
    };
    const x64 = Float64Array.from(x);
    const h = 1e-6;
    for (let trial = 0; trial < 12; trial++) {
      const j = rng.int(N * V);
      const keep = x64[j];
      x64[j] = keep + h;
      const up = f(x64);
      x64[j] = keep - h;
      const dn = f(x64);
      x64[j] = keep;
      const fd = (up - dn) / (2 * h);
      assert.ok(
        Math.abs(fd - g[j]) < 1e-4 + 1e-3 * Math.abs(fd),
        `d/dx[${j}]: ${g[j]} vs ${fd} ${JSON.stringify(s)}`,
      );
    }
    xt.dispose();
  }
});

Deno.test("sampledLogProbs refuses mismatched shapes and bad settings", async () => {
  await initTensors();
  const x = tensor(new Float32Array(6), [2, 3]);
  assert.throws(
    () => sampledLogProbs(x, tensor(new Int32Array(3)), { temperature: 1, topK: 0, topP: 1 }),
    /need tokens of shape \[2\]/,
  );
  assert.throws(
    () => sampledLogProbs(x, tensor(new Int32Array(2)), { temperature: 1, topK: 4, topP: 1 }),
    /topK 4 exceeds/,
  );
  x.dispose();
});

Deno.test("sampledLogProbs keeps its precision at small temperatures and large logits", async () => {
  await initTensors();
  // Logits around 20 at temperature 1e-3: logit / T is ~2e4, which f32 holds only to ~2e-3, so a
  // replay that divides before subtracting the max is off by that much; near-top tokens matter.
  const rng = new Rng(5);
  const N = 6, V = 40;
  const x = Float32Array.from({ length: N * V }, () => 20 + rng.normal() * 0.01);
  for (
    const s of [{ temperature: 1e-3, topK: 0, topP: 1 }, { temperature: 0.01, topK: 8, topP: 0.9 }]
  ) {
    const toks = Int32Array.from({ length: N }, (_, n) => {
      const row = x.subarray(n * V, (n + 1) * V);
      return row.indexOf(Math.max(...row)); // the top token: kept by every truncation
    });
    const out = tidy(() => sampledLogProbs(tensor(x, [N, V]), tensor(toks, [N]), s));
    const [got] = await readAll([out]);
    out.dispose();
    for (let n = 0; n < N; n++) {
      const want = processedLogProbs(x.subarray(n * V, (n + 1) * V), s)[toks[n]];
      assert.ok(
        Math.abs(got[n] - want) < 1e-4,
        `row ${n}: ${got[n]} vs ${want} ${JSON.stringify(s)}`,
      );
    }
  }
});
