import assert from "node:assert/strict";
import { ComputeBatch } from "../src/gpu/mod.ts";
import { initTensors, readAll, runtime, tensor } from "../src/tensor/mod.ts";
import {
  allocSampleBuffers,
  disposeSampleBuffers,
  NO_STOP,
  recordSampleStep,
  resetSampleState,
  type SampleBuffers,
  unpackSampleOutputs,
} from "../src/nn/sample_step.ts";
import {
  processedLogProbs,
  sampleStepRef,
  type SamplingSettings,
} from "../src/nn/sampling_reference.ts";
import { Rng, uniformAt } from "../src/util/rng.ts";

/** Rows of logits with ties, -inf entries, peaked and flat rows. */
function makeLogits(rng: Rng, B: number, V: number): Float32Array {
  const x = new Float32Array(B * V);
  for (let r = 0; r < B; r++) {
    const kind = r % 4;
    for (let i = 0; i < V; i++) {
      let v = rng.normal() * (kind === 1 ? 6 : 1.5);
      if (kind === 2) v = Math.round(v); // many ties
      if (kind === 3 && i % 5 === 0) v = -Infinity;
      x[r * V + i] = v;
    }
  }
  return x;
}

async function runSteps(
  logitsPerStep: Float32Array[],
  B: number,
  V: number,
  s: SamplingSettings,
  K: number,
  seed: number,
  stopId = NO_STOP,
): Promise<ReturnType<typeof unpackSampleOutputs> & { buffers: SampleBuffers }> {
  const N = logitsPerStep.length;
  const buffers = allocSampleBuffers(B, N, K);
  // Prompts of length 1: step s samples generated index g = s.
  const prompt = tensor(new Int32Array([...new Array(B).fill(1), ...new Array(B).fill(1)]));
  resetSampleState(buffers, new Int32Array(B).fill(1));
  const logits = logitsPerStep.map((l) => tensor(l, [B, V]));
  runtime().flush();
  logits.forEach((l, step) => {
    const batch = new ComputeBatch(runtime().gpu);
    const temps = recordSampleStep(batch, {
      logits: l,
      buffers,
      prompt,
      promptCols: 1,
      step,
      settings: s,
      seed,
      stopIds: stopId === NO_STOP ? [] : [stopId],
      padId: 0,
    });
    batch.submit();
    for (const t of temps) t.destroy();
  });
  const [st, main, top] = await readAll([buffers.state, buffers.outMain, buffers.outTop]);
  logits.forEach((l) => l.dispose());
  prompt.dispose();
  const out = unpackSampleOutputs(
    buffers,
    B,
    st as Uint32Array,
    main as Uint32Array,
    top as Uint32Array,
    0,
  );
  return { ...out, buffers };
}

const SETTINGS: SamplingSettings[] = [
  { temperature: 1, topK: 0, topP: 1 },
  { temperature: 0.7, topK: 5, topP: 1 },
  { temperature: 1.3, topK: 0, topP: 0.8 },
  { temperature: 0.9, topK: 12, topP: 0.6 },
  { temperature: 0, topK: 0, topP: 1 },
];

Deno.test("sample_row matches the float64 reference (tokens, processed/raw log-probs, top-k capture)", async () => {
  await initTensors();
  const rng = new Rng(11);
  const cases = [...SETTINGS.map((s) => ({ s, V: 37 })), { s: SETTINGS[3], V: 700 }, {
    s: SETTINGS[2],
    V: 700,
  }];
  const B = 8, K = 6, N = 3;
  for (const { s, V } of cases) {
    const steps = Array.from({ length: N }, () => makeLogits(rng, B, V));
    const seed = rng.int(1 << 30);
    const out = await runSteps(steps, B, V, s, K, seed);
    let compared = 0;
    for (let r = 0; r < B; r++) {
      assert.equal(out.lengths[r], N);
      assert.equal(out.flags[r], 0);
      for (let g = 0; g < N; g++) {
        const row = steps[g].subarray(r * V, (r + 1) * V);
        const ref = sampleStepRef(row, s, uniformAt(seed, r, g), K);
        const o = r * N + g;
        const lp = processedLogProbs(row, s);
        // The kept set and the processed log-probs of the captured ids match whatever was drawn.
        for (let j = 0; j < K; j++) {
          assert.equal(
            out.topIds[o * K + j],
            ref.topIds[j],
            `top id ${j} row ${r} ${JSON.stringify(s)}`,
          );
          const want = ref.topLogProbs[j], got = out.topLogProbs[o * K + j];
          if (want === -Infinity) assert.equal(got, -Infinity);
          else {assert.ok(
              Math.abs(got - want) < 1e-5,
              `top lp ${got} vs ${want} row ${r} g ${g} j ${j} ${JSON.stringify(s)}`,
            );}
        }
        const tok = out.tokens[o];
        assert.ok(lp[tok] > -Infinity, `token ${tok} outside the kept set`);
        assert.ok(
          Math.abs(out.logProbs[o] - lp[tok]) < 1e-5,
          `lp ${out.logProbs[o]} vs ${lp[tok]}`,
        );
        const raw = ref.rawLogProb;
        if (ref.margin > 1e-5) {
          assert.equal(tok, ref.token, `token row ${r} step ${g} ${JSON.stringify(s)}`);
          assert.ok(
            Math.abs(out.rawLogProbs[o] - raw) < 1e-5,
            `raw ${out.rawLogProbs[o]} vs ${raw}`,
          );
          compared++;
        }
      }
    }
    assert.ok(compared >= B * N - 2, `only ${compared} unambiguous draws`);
    disposeSampleBuffers(out.buffers);
  }
});

Deno.test("sample_row draws follow the processed distribution (frequency check)", async () => {
  await initTensors();
  const B = 256, V = 7;
  const row = new Float32Array([0.5, -1, 2, 0.1, 2, -3, 1]);
  const s: SamplingSettings = { temperature: 0.8, topK: 4, topP: 0.9 };
  const logits = new Float32Array(B * V);
  for (let r = 0; r < B; r++) logits.set(row, r * V);
  const out = await runSteps([logits, logits], B, V, s, 0, 5);
  const p = Array.from(processedLogProbs(row, s), Math.exp);
  const counts = new Array(V).fill(0);
  for (const t of out.tokens) counts[t]++;
  const n = out.tokens.length;
  for (let i = 0; i < V; i++) {
    const sd = Math.sqrt(n * p[i] * (1 - p[i])) + 1e-9;
    if (p[i] === 0) assert.equal(counts[i], 0, `truncated id ${i} was drawn`);
    else {assert.ok(
        Math.abs(counts[i] - n * p[i]) < 4.5 * sd,
        `id ${i}: ${counts[i]} vs ${n * p[i]}`,
      );}
  }
  disposeSampleBuffers(out.buffers);
});

Deno.test("sample_row stops rows on the stop token, pads after, and flags non-finite logits", async () => {
  await initTensors();
  const B = 3, V = 5;
  // Row 0 always draws id 2 (the stop); row 1 never; row 2 has a NaN.
  const mk = () => {
    const x = new Float32Array(B * V).fill(-Infinity);
    x[0 * V + 2] = 0;
    x[1 * V + 4] = 0;
    x.fill(0, 2 * V, 3 * V);
    x[2 * V + 1] = NaN;
    return x;
  };
  const out = await runSteps(
    [mk(), mk(), mk()],
    B,
    V,
    { temperature: 1, topK: 0, topP: 1 },
    2,
    3,
    2,
  );
  assert.deepEqual(Array.from(out.lengths), [1, 3, 3]);
  assert.deepEqual(Array.from(out.stopped), [1, 0, 0]);
  assert.deepEqual(Array.from(out.tokens.subarray(0, 3)), [2, 0, 0]);
  assert.deepEqual(Array.from(out.tokens.subarray(3, 6)), [4, 4, 4]);
  assert.equal(out.flags[0], 0);
  assert.equal(out.flags[2] & 1, 1);
  assert.equal(out.logProbs[0], 0);
  disposeSampleBuffers(out.buffers);
});

Deno.test("sample_row at the extremes: top-k 1 and V, top-p 1e-6 and 1, temperature 0 and 1e-6 (ties kept or to the lower id)", async () => {
  await initTensors();
  const rng = new Rng(23);
  const V = 37, B = 8, K = V, N = 2;
  const extremes: SamplingSettings[] = [
    { temperature: 1, topK: 1, topP: 1 },
    { temperature: 1, topK: V, topP: 1 },
    { temperature: 1, topK: 0, topP: 1e-6 },
    { temperature: 0.5, topK: 1, topP: 1e-6 },
    { temperature: 1e-6, topK: 0, topP: 1 },
    { temperature: 0, topK: 1, topP: 1e-6 },
  ];
  for (const s of extremes) {
    const steps = Array.from({ length: N }, () => makeLogits(rng, B, V));
    // Rows 0 and 4 get a tie at the top (ids 3 and 20), which every truncation above keeps whole
    // and greedy breaks to the lower id.
    for (const l of steps) {
      for (const r of [0, 4]) {
        let m = -Infinity;
        for (let i = 0; i < V; i++) m = Math.max(m, l[r * V + i]);
        l[r * V + 3] = l[r * V + 20] = m + 1;
      }
    }
    const seed = rng.int(1 << 30);
    const out = await runSteps(steps, B, V, s, K, seed);
    for (let r = 0; r < B; r++) {
      for (let g = 0; g < N; g++) {
        const row = steps[g].subarray(r * V, (r + 1) * V);
        const lp = processedLogProbs(row, s);
        const o = r * N + g, tok = out.tokens[o];
        assert.ok(lp[tok] > -Infinity, `token ${tok} outside the kept set ${JSON.stringify(s)}`);
        assert.ok(Math.abs(out.logProbs[o] - lp[tok]) < 1e-5, `${out.logProbs[o]} vs ${lp[tok]}`);
        const kept = lp.filter((x) => x > -Infinity).length;
        if (r % 4 === 0) {
          if (s.temperature === 0) assert.equal(tok, 3, "greedy ties go to the lower id");
          else if (s.topK !== V && s.topK !== 0 || s.topP < 1) {
            assert.equal(kept, 2, `both tied tops kept ${JSON.stringify(s)}`);
            assert.ok(tok === 3 || tok === 20);
            assert.ok(Math.abs(out.logProbs[o] - Math.log(0.5)) < 1e-6);
          }
        }
        if (s.topK === V && s.topP === 1 && s.temperature === 1) {
          assert.ok(
            Math.abs(out.logProbs[o] - out.rawLogProbs[o]) < 1e-6,
            "top-k = V is no truncation",
          );
        }
        // The whole captured vocabulary (K = V) carries the processed log-probs.
        for (let j = 0; j < K; j++) {
          const id = out.topIds[o * K + j], got = out.topLogProbs[o * K + j];
          if (lp[id] === -Infinity) assert.equal(got, -Infinity);
          // Relative beyond 1: at temperature 1e-6 a runner-up's log-prob is about -1e6, whose f32
          // spacing is 0.06.
          else {assert.ok(
              Math.abs(got - lp[id]) < 1e-5 * Math.max(1, Math.abs(lp[id])),
              `capture ${got} vs ${lp[id]}`,
            );}
        }
      }
    }
    disposeSampleBuffers(out.buffers);
  }
});
