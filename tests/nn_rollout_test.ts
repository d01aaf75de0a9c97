import assert from "node:assert/strict";
import { noGrad } from "../src/autograd/mod.ts";
import { copyInto, initTensors, readAll, runtime, tensor, tidy } from "../src/tensor/mod.ts";
import { type ModelConfig, validateModelConfig } from "../src/nn/config.ts";
import { completion, RolloutEngine } from "../src/nn/rollout.ts";
import { decodeStep, KVCache } from "../src/nn/kv_cache.ts";
import { referenceLogits, type RefParams } from "../src/nn/reference.ts";
import { sampledLogProbs } from "../src/nn/replay.ts";
import {
  logSoftmaxRef,
  processedLogProbs,
  sampleStepRef,
  type SamplingSettings,
  topKIds,
} from "../src/nn/sampling_reference.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { Rng, uniformAt } from "../src/util/rng.ts";

const CFG: ModelConfig = validateModelConfig({
  vocabSize: 13,
  hidden: 16,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  headDim: 4,
  intermediate: 24,
  maxSeqLen: 32,
  ropeTheta: 10000,
  normEps: 1e-6,
  tiedEmbeddings: true,
  qkNorm: true,
});

/** Prompts of minLen..maxLen tokens (a minLen above 1 exercises the prefill). */
function prompts(rng: Rng, B: number, maxLen: number, minLen = 1): Int32Array[] {
  return Array.from(
    { length: B },
    () => Int32Array.from({ length: minLen + rng.int(maxLen - minLen + 1) }, () => 3 + rng.int(10)),
  );
}

const SETTINGS: SamplingSettings[] = [
  { temperature: 1, topK: 0, topP: 1 },
  { temperature: 0.7, topK: 6, topP: 0.9 },
  { temperature: 0, topK: 0, topP: 1 },
];

Deno.test("rollout: captured log-probs equal a training-mode forward (and the GPU replay) over the finished sequences", async () => {
  await initTensors();
  const model = Transformer.init(CFG, { seed: 21, std: 0.4 });
  const rng = new Rng(4);
  const B = 6, maxPrompt = 4, maxNew = 6, K = 4;
  const engine = new RolloutEngine(model, {
    maxBatch: 8,
    maxPromptLength: maxPrompt,
    maxNewTokens: maxNew,
    captureK: K,
  });
  for (const [i, s] of [...SETTINGS, ...SETTINGS].entries()) {
    const ps = prompts(rng, B, maxPrompt, i < SETTINGS.length ? 1 : 3);
    const reads = RolloutEngine.readCount();
    const r = await engine.generate(ps, { ...s, seed: 77, stream0: 3, stopId: 2, padId: 0 });
    assert.equal(RolloutEngine.readCount() - reads, 1, "one readback per batch");
    const lens = ps.map((p) => p.length);
    assert.equal(
      r.steps,
      Math.max(...lens) + maxNew - Math.min(...lens),
      "decode steps after the prefill",
    );
    // Training-mode forward over prompt + completion, right-padded.
    const T = maxPrompt + maxNew;
    const flat = new Int32Array(B * T);
    ps.forEach((p, b) => {
      flat.set(p, b * T);
      flat.set(completion(r, b), b * T + p.length);
    });
    // The trainer's replay: the processed log-prob of each next token, on the GPU.
    const next = new Int32Array(B * T).fill(0);
    for (let i = 0; i + 1 < B * T; i++) if ((i + 1) % T !== 0) next[i] = flat[i + 1];
    const [logits, replayed] = tidy(() => {
      const l = model.forward(tensor(flat, [B, T]));
      return [l, sampledLogProbs(l, tensor(next, [B, T]), s)];
    });
    const [host, replay] = await readAll([logits, replayed]);
    logits.dispose();
    replayed.dispose();
    let maxDiff = 0, drawsChecked = 0;
    for (let b = 0; b < B; b++) {
      const c = completion(r, b);
      assert.ok(c.length >= 1 && c.length <= maxNew);
      if (r.stopped[b]) assert.equal(c[c.length - 1], 2);
      else assert.equal(c.length, maxNew);
      for (let g = 0; g < c.length; g++) {
        const pos = ps[b].length - 1 + g;
        const row = host.subarray((b * T + pos) * CFG.vocabSize, (b * T + pos + 1) * CFG.vocabSize);
        const o = b * maxNew + g;
        const raw = logSoftmaxRef(row)[c[g]];
        const lp = processedLogProbs(row, s)[c[g]];
        maxDiff = Math.max(
          maxDiff,
          Math.abs(raw - r.rawLogProbs[o]),
          Math.abs(lp - r.logProbs[o]),
          Math.abs(replay[b * T + pos] - r.logProbs[o]),
        );
        const ids = topKIds(row, K);
        const plp = processedLogProbs(row, s);
        for (let j = 0; j < K; j++) {
          assert.equal(r.topIds[o * K + j], ids[j]);
          const want = plp[ids[j]], got = r.topLogProbs[o * K + j];
          if (want === -Infinity) assert.equal(got, -Infinity);
          else maxDiff = Math.max(maxDiff, Math.abs(want - got));
        }
        const ref = sampleStepRef(row, s, uniformAt(77, 3 + b, g), K);
        if (ref.margin > 1e-4) {
          assert.equal(c[g], ref.token, `row ${b} token ${g}: the draw differs from the reference`);
          drawsChecked++;
        }
      }
      for (let g = c.length; g < maxNew; g++) assert.equal(r.tokens[b * maxNew + g], 0);
    }
    assert.ok(maxDiff <= 1e-4, `max |Δ log-prob| ${maxDiff} with ${JSON.stringify(s)}`);
    assert.ok(drawsChecked > B, "too few unambiguous draws");
  }
  engine.dispose();
  model.dispose();
});

Deno.test("rollout: seeded (same seed, same tokens), and GPU memory is flat across batches", async () => {
  await initTensors();
  const model = Transformer.init(CFG, { seed: 5, std: 0.4 });
  const engine = new RolloutEngine(model, {
    maxBatch: 4,
    maxPromptLength: 3,
    maxNewTokens: 5,
    captureK: 2,
  });
  const ps = prompts(new Rng(1), 4, 3);
  const a = await engine.generate(ps, { seed: 9 });
  const after1 = runtime().pool.stats();
  const b = await engine.generate(ps, { seed: 9 });
  const after2 = runtime().pool.stats();
  const c = await engine.generate(ps, { seed: 10 });
  const after3 = runtime().pool.stats();
  assert.deepEqual(b.tokens, a.tokens);
  assert.deepEqual(b.logProbs, a.logProbs);
  assert.notDeepEqual(c.tokens, a.tokens);
  assert.equal(after2.liveBytes, after1.liveBytes);
  assert.equal(after3.liveBytes, after1.liveBytes);
  assert.equal(after3.created, after2.created, "a steady-state batch creates no GPU buffers");
  engine.dispose();
  model.dispose();
});

Deno.test("rollout: bad requests are refused with clear errors", async () => {
  await initTensors();
  const model = Transformer.init(CFG, { seed: 5 });
  assert.throws(
    () => new RolloutEngine(model, { maxBatch: 2, maxPromptLength: 30, maxNewTokens: 10 }),
    /maxSeqLen/,
  );
  const engine = new RolloutEngine(model, { maxBatch: 2, maxPromptLength: 3, maxNewTokens: 2 });
  await assert.rejects(() => engine.generate([[1, 2, 3, 4]], { seed: 1 }), /4 tokens/);
  await assert.rejects(() => engine.generate([[1, 99]], { seed: 1 }), /outside \[0, 13\)/);
  await assert.rejects(() => engine.generate([[1]], { seed: 1, topP: 0 }), /topP/);
  await assert.rejects(() => engine.generate([[1], [1], [1]], { seed: 1 }), /batch of 3/);
  engine.dispose();
  noGrad(() => model.dispose());
});

Deno.test("fused decode attention equals the composed path, step by step (cache writes included)", async () => {
  await initTensors();
  for (const kvHeads of [1, 2, 4]) {
    const model = Transformer.init({ ...CFG, kvHeads }, { seed: 8, std: 0.4 });
    const B = 3, steps = 6;
    const fused = new KVCache(model, B, 8), composed = new KVCache(model, B, 8);
    const rng = new Rng(kvHeads);
    let maxDiff = 0;
    for (let s = 0; s < steps; s++) {
      const ids = tensor(Int32Array.from({ length: B }, () => rng.int(CFG.vocabSize)));
      const [a, b] = await readAll(
        noGrad(
          () => [
            decodeStep(model, ids, fused, s, true),
            decodeStep(model, ids, composed, s, false),
          ],
        ),
      );
      for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    }
    // Layer 0's keys and values do not depend on attention: values are copies and must agree bit
    // for bit; keys are computed by two kernels with the same expressions (the joined decode
    // kernel and ops_qkv_heads), equal on llvmpipe, but a GPU compiler may contract their
    // multiply-adds differently, so they get a few ulps.
    const [kf, kc, vf, vc] = await readAll([fused.k[0], composed.k[0], fused.v[0], composed.v[0]]);
    const D = CFG.headDim, T = 8;
    for (let r = 0; r < B * kvHeads; r++) {
      for (let i = 0; i < steps * D; i++) {
        const at = r * T * D + i;
        assert.ok(
          Math.abs(kf[at] - kc[at]) <= 1e-6 * Math.max(1, Math.abs(kc[at])),
          `key ${at}: ${kf[at]} vs ${kc[at]}`,
        );
        assert.equal(vf[at], vc[at]);
      }
    }
    assert.ok(maxDiff < 1e-5, `kvHeads ${kvHeads}: max |Δ logit| ${maxDiff}`);
    fused.dispose();
    composed.dispose();
    model.dispose();
  }
});

Deno.test("rollout: sampling settings and ids that would silently go wrong are refused", async () => {
  await initTensors();
  const model = Transformer.init(CFG, { seed: 5 });
  const engine = new RolloutEngine(model, { maxBatch: 2, maxPromptLength: 3, maxNewTokens: 2 });
  // A temperature whose f32 division overflows gave NaN log-probs and an arbitrary token.
  for (const temperature of [1e-45, 1e-30, 1e-7]) {
    await assert.rejects(
      () => engine.generate([[1]], { seed: 1, temperature }),
      /temperature must be 0 \(greedy\) or at least 1e-6/,
    );
  }
  // Seeds and streams are u32 counters: a NaN, fraction or negative would be wrapped silently.
  for (const seed of [NaN, -1, 1.5, 2 ** 32]) {
    await assert.rejects(() => engine.generate([[1]], { seed }), /seed must be an integer in/);
  }
  await assert.rejects(
    () => engine.generate([[1]], { seed: 1, stream0: -3 }),
    /stream0 must be an integer in/,
  );
  await assert.rejects(
    () => engine.generate([[1], [2]], { seed: 1, stream0: 2 ** 32 - 1 }),
    /stream0/,
    "row streams past 2^32 would wrap onto row 0's",
  );
  // A stop token outside the vocabulary never stops a row; a pad outside it is fed to the model.
  for (const stopId of [13, -2, 2.5]) {
    await assert.rejects(
      () => engine.generate([[1]], { seed: 1, stopId }),
      /stopId must be an integer in \[0, 13\)/,
    );
  }
  for (const padId of [13, -1]) {
    await assert.rejects(
      () => engine.generate([[1]], { seed: 1, padId }),
      /padId must be an integer in \[0, 13\)/,
    );
  }
  // -1 means no stop token, as a batch records it.
  const none = await engine.generate([[1]], { seed: 1, stopId: -1 });
  assert.equal(none.stopId, -1);
  assert.deepEqual(none.stopIds, []);
  // A list: every id checked, at most MAX_STOP_IDS distinct ones (repeats count once).
  await assert.rejects(
    () => engine.generate([[1]], { seed: 1, stopId: [2, 13] }),
    /stopId must be an integer in \[0, 13\), got 13/,
  );
  await assert.rejects(
    () => engine.generate([[1]], { seed: 1, stopId: [2, 3, 4, 5, 6] }),
    /5 stop tokens \(2, 3, 4, 5, 6\), at most 4/,
  );
  const repeated = await engine.generate([[1]], { seed: 1, stopId: [5, 5, 6, 6, 5] });
  assert.deepEqual(repeated.stopIds, [5, 6]);
  assert.equal(repeated.stopId, 5);
  // The smallest accepted temperature still gives finite log-probs.
  const r = await engine.generate([[1], [2, 3]], { seed: 1, temperature: 1e-6, stopId: 12 });
  for (let b = 0; b < 2; b++) {
    for (let g = 0; g < r.lengths[b]; g++) assert.ok(Number.isFinite(r.logProbs[b * 2 + g]));
  }
  engine.dispose();
  noGrad(() => model.dispose());
});

Deno.test("rollout: a list of stop tokens ends each row at the first of any of them", async () => {
  await initTensors();
  const model = Transformer.init(CFG, { seed: 5, std: 0.6 });
  const maxNew = 10;
  const engine = new RolloutEngine(model, {
    maxBatch: 12,
    maxPromptLength: 3,
    maxNewTokens: maxNew,
  });
  const ps = prompts(new Rng(9), 12, 3);
  // Sampled with temperature 1 and a fixed seed, each row's draws are the same whatever stops it,
  // so the free run says where every set of stop tokens must cut each row.
  const progress: number[] = [];
  const reads = RolloutEngine.readCount();
  const free = await engine.generate(ps, {
    seed: 3,
    temperature: 1,
    onProgress: (done, total) => progress.push(done / total),
  });
  // Progress as the GPU finishes steps: rising, ending at 1, no readback of its own.
  assert.equal(RolloutEngine.readCount() - reads, 1);
  assert.ok(progress.length >= 2 && progress.at(-1) === 1, `progress ${progress}`);
  assert.ok(progress.every((p, i) => i === 0 || p > progress[i - 1]), `progress ${progress}`);
  const seen = [...new Set(Array.from(free.tokens))];
  assert.ok(seen.length >= 4, `the free run should use several tokens, used ${seen}`);
  for (const stops of [[seen[0]], [seen[0], seen[1]], seen.slice(0, 4), [seen[2], seen[3]]]) {
    const r = await engine.generate(ps, { seed: 3, temperature: 1, stopId: stops, padId: 0 });
    assert.deepEqual(r.stopIds, stops);
    let anyStopped = false;
    for (let b = 0; b < ps.length; b++) {
      const row = Array.from(free.tokens.subarray(b * maxNew, (b + 1) * maxNew));
      const cut = row.findIndex((t) => stops.includes(t));
      const want = cut < 0 ? row : row.slice(0, cut + 1);
      assert.deepEqual(Array.from(completion(r, b)), want, `row ${b}, stops ${stops}`);
      assert.equal(r.stopped[b], cut < 0 ? 0 : 1);
      anyStopped ||= cut >= 0 && cut < maxNew - 1;
    }
    assert.ok(anyStopped, `stops ${stops} should cut some row short`);
  }
  engine.dispose();
  noGrad(() => model.dispose());
});

/** Max |Δ| between the captured (processed, raw) log-probs and a training-mode forward. */
async function replayGap(
  model: Transformer,
  r: Awaited<ReturnType<RolloutEngine["generate"]>>,
  s: SamplingSettings,
): Promise<number> {
  const ps = r.prompts, B = ps.length, V = model.config.vocabSize;
  const T = Math.max(...ps.map((p, b) => p.length + r.lengths[b]));
  const flat = new Int32Array(B * T);
  ps.forEach((p, b) => {
    flat.set(p, b * T);
    flat.set(completion(r, b), b * T + p.length);
  });
  const logits = noGrad(() => tidy(() => model.forward(tensor(flat, [B, T]))));
  const [host] = await readAll([logits]);
  logits.dispose();
  let gap = 0;
  for (let b = 0; b < B; b++) {
    for (let g = 0; g < r.lengths[b]; g++) {
      const pos = ps[b].length - 1 + g;
      const row = host.subarray((b * T + pos) * V, (b * T + pos + 1) * V);
      const o = b * r.maxNew + g;
      gap = Math.max(
        gap,
        Math.abs(logSoftmaxRef(row)[r.tokens[o]] - r.rawLogProbs[o]),
        Math.abs(processedLogProbs(row, s)[r.tokens[o]] - r.logProbs[o]),
      );
    }
  }
  return gap;
}

Deno.test("rollout edges: one new token, a batch of 1, prompts of 1 and of maxPromptLength tokens, every row stopping at once, split batches", async () => {
  await initTensors();
  const cfg = { ...CFG, tiedEmbeddings: false, qkNorm: false };
  const model = Transformer.init(cfg, { seed: 21, std: 0.4 });
  const P = 9;
  const ids = (n: number, k: number) =>
    Int32Array.from({ length: n }, (_, i) => 3 + (i * 7 + k) % 10);
  const plain = { temperature: 1, topK: 0, topP: 1 };
  const greedy = { temperature: 0, topK: 0, topP: 1 };
  // maxNewTokens = 1: every row gets exactly one token, whatever its prompt length.
  const one = new RolloutEngine(model, { maxBatch: 4, maxPromptLength: P, maxNewTokens: 1 });
  for (const ps of [[ids(1, 0)], [ids(P, 1)], [ids(1, 2), ids(P, 3), ids(2, 4)]]) {
    const r = await one.generate(ps, { seed: 5 });
    assert.deepEqual(Array.from(r.lengths), ps.map(() => 1));
    assert.equal(
      r.steps,
      Math.max(...ps.map((p) => p.length)) - Math.min(...ps.map((p) => p.length)) + 1,
    );
    const gap = await replayGap(model, r, plain);
    assert.ok(gap <= 1e-4, `maxNew 1, prompts ${ps.map((p) => p.length)}: gap ${gap}`);
  }
  one.dispose();
  // Every row stops at its first token: stop on the greedy first token of prompts that share it.
  const engine = new RolloutEngine(model, { maxBatch: 6, maxPromptLength: P, maxNewTokens: 5 });
  const ps = [ids(1, 0), ids(P, 1), ids(2, 2), ids(3, 3), ids(5, 4), ids(P, 5)];
  const g = await engine.generate(ps, { seed: 1, temperature: 0 });
  assert.ok((await replayGap(model, g, greedy)) <= 1e-4);
  const firsts = ps.map((_, b) => g.tokens[b * 5]);
  const first = firsts.reduce((m, t) => (firsts.filter((x) => x === t).length >
      firsts.filter((x) => x === m).length
    ? t
    : m)
  );
  const same = ps.filter((_, b) => firsts[b] === first);
  assert.ok(same.length >= 2, "too few prompts share the first greedy token");
  const stop = await engine.generate(same, { seed: 1, temperature: 0, stopId: first, padId: 1 });
  assert.deepEqual(Array.from(stop.lengths), same.map(() => 1));
  assert.deepEqual(Array.from(stop.stopped), same.map(() => 1));
  for (let b = 0; b < same.length; b++) {
    assert.deepEqual(Array.from(stop.tokens.subarray(b * 5, b * 5 + 5)), [first, 1, 1, 1, 1]);
  }
  // Rows draw from streams stream0 + row: a batch split in two with stream0 advanced reproduces
  // the whole batch (equal prompt lengths, so every row computes the same positions either way),
  // and identical prompts in one batch get independent draws.
  const eq = Array.from({ length: 6 }, () => ids(3, 0));
  const whole = await engine.generate(eq, { seed: 8 });
  const head = await engine.generate(eq.slice(0, 2), { seed: 8 });
  const tail = await engine.generate(eq.slice(2), { seed: 8, stream0: 2 });
  assert.deepEqual(head.tokens, whole.tokens.slice(0, 2 * 5));
  assert.deepEqual(tail.tokens, whole.tokens.slice(2 * 5));
  const rowsSeen = new Set(eq.map((_, b) => completion(whole, b).join(",")));
  assert.ok(rowsSeen.size > 1, "identical prompts drew identical completions in every row");
  // Memory stays flat across batches of every shape once each shape has run.
  const shapes = [[1], [1, P], [2, 3, 4], [P, P, P, P, P, P], [1, 1, 1]];
  const batch = (ls: number[], k: number) => ls.map((l, i) => ids(l, k + i));
  for (const sh of shapes) await engine.generate(batch(sh, 0), { seed: 2 });
  const before = runtime().pool.stats();
  for (let k = 1; k <= 3; k++) {
    for (const sh of shapes) await engine.generate(batch(sh, k), { seed: 2 + k });
  }
  const after = runtime().pool.stats();
  assert.equal(after.liveBytes, before.liveBytes);
  assert.equal(after.created, before.created, "repeated shapes create no GPU buffers");
  engine.dispose();
  model.dispose();
});

Deno.test("rollout: a batch that fails midway leaves no GPU error scope and no buffers behind", async () => {
  await initTensors();
  const model = Transformer.init(CFG, { seed: 5 });
  const engine = new RolloutEngine(model, { maxBatch: 2, maxPromptLength: 3, maxNewTokens: 2 });
  await engine.generate([[1, 2], [3]], { seed: 1 }); // warm: every buffer size exists
  noGrad(() => model.dispose()); // the model's weights are gone: the prefill fails
  const before = runtime().pool.stats();
  await assert.rejects(() => engine.generate([[1, 2], [3, 4]], { seed: 1 }), /after release/);
  // The engine's validation scope was popped: the device's scope stack is empty again (a leaked
  // scope would swallow every later validation error instead of reporting it).
  await assert.rejects(() => runtime().gpu.device.popErrorScope());
  const after = runtime().pool.stats();
  assert.equal(after.liveBytes, before.liveBytes, "the prompt tensors of the failed batch leaked");
  engine.dispose();
});

Deno.test("rollout with nonzero q/k/v biases (qwen2 and qwen3): captured log-probs equal a training-mode forward, which equals the float64 reference", async () => {
  await initTensors();
  for (const over of [{ qkNorm: false }, { qkNorm: true, kvHeads: 1 }]) {
    const cfg = validateModelConfig({ ...CFG, ...over, attentionBias: true });
    const model = Transformer.init(cfg, { seed: 23, std: 0.4 });
    const rng = new Rng(9);
    for (const b of model.blocks) {
      const data = Float32Array.from({ length: b.bQkv!.size }, () => 0.6 * rng.normal());
      tidy(() => copyInto(tensor(data, b.bQkv!.shape), b.bQkv!));
    }
    const engine = new RolloutEngine(model, { maxBatch: 6, maxPromptLength: 5, maxNewTokens: 6 });
    let worst = 0;
    for (const [i, s] of SETTINGS.entries()) {
      // prompts of 1..5 tokens (decode steps from the start) and of 3..5 (the prefill's path)
      const r = await engine.generate(prompts(rng, 6, 5, i === 1 ? 3 : 1), { ...s, seed: 3 + i });
      const gap = await replayGap(model, r, s);
      worst = Math.max(worst, gap);
      assert.ok(gap <= 1e-4, `${JSON.stringify(over)} ${JSON.stringify(s)}: gap ${gap}`);
    }
    // the training forward of one finished row against float64
    const named = model.namedParameters();
    const data = await readAll([...named.values()]);
    const p: RefParams = new Map([...named.keys()].map((k, i) => [k, Float64Array.from(data[i])]));
    const seq = Int32Array.from({ length: 11 }, () => rng.int(cfg.vocabSize));
    const logits = noGrad(() => tidy(() => model.forward(tensor(seq, [1, seq.length]))));
    const [host] = await readAll([logits]);
    logits.dispose();
    let err = 0;
    referenceLogits(cfg, p, seq).forEach((row, t) =>
      row.forEach((v, j) => (err = Math.max(err, Math.abs(v - host[t * cfg.vocabSize + j]))))
    );
    console.log(
      `${JSON.stringify(over)} with biases: max |captured − forward log-prob| ` +
        `${worst.toExponential(2)}, max |logit − float64| ${err.toExponential(2)}`,
    );
    assert.ok(err < 1e-4, `max |logit − float64| ${err}`);
    engine.dispose();
    model.dispose();
  }
});
