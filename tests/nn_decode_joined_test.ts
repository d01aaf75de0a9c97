/**
 * The decode kernel that reads the joined q/k/v projection (kernels/nn_decode_attention.wgsl
 * `joined`, src/nn/kv_cache.ts `decodeAttentionJoined`): QK-norm, RoPE, attention and the cache
 * write in one dispatch, against a float64 reference of the same step and against the composed
 * path (ops.qkvNormRope, then decodeAttentionComposed), with and without q/k/v biases; and whole
 * decode steps against the composed decode step and the float64 transformer (src/nn/reference.ts).
 */
import assert from "node:assert/strict";
import { noGrad, ops } from "../src/autograd/mod.ts";
import { copyInto, initTensors, readAll, type Tensor, tensor, tidy } from "../src/tensor/mod.ts";
import { type ModelConfig, validateModelConfig } from "../src/nn/config.ts";
import {
  decodeAttentionComposed,
  decodeAttentionFused,
  decodeAttentionJoined,
  decodeStep,
  FUSED_DECODE_LIMITS,
  KVCache,
} from "../src/nn/kv_cache.ts";
import { referenceLogits, type RefParams } from "../src/nn/reference.ts";
import { type BlockParams, Transformer } from "../src/nn/transformer.ts";
import { Rng } from "../src/util/rng.ts";
import { DECODE_TEST_MODEL, randomModel } from "./nn_decode_util.ts";

const BASE: ModelConfig = DECODE_TEST_MODEL;

// Reads f32 tensors back.
async function readF32(ts: Tensor[]): Promise<Float32Array[]> {
  return (await readAll(ts)).map((a) => {
    if (!(a instanceof Float32Array)) throw new TypeError("expected f32 tensors");
    return a;
  });
}

async function hostParams(model: Transformer): Promise<RefParams> {
  const named = model.namedParameters();
  const data = await readF32([...named.values()]);
  const m: RefParams = new Map();
  [...named.keys()].forEach((k, i) => m.set(k, Float64Array.from(data[i])));
  return m;
}

// Writes host `data` over the whole of `dst` (contiguous).
function fill(dst: Tensor, data: Float32Array): void {
  const strides = dst.shape.map((_, i) => dst.shape.slice(i + 1).reduce((p, d) => p * d, 1));
  tidy(() => copyInto(tensor(data, dst.shape), dst, strides, 0));
}

/**
 * Float64 reference of one joined decode step of row b: q head h and the new key of kv head
 * h / G through RMSNorm (weight w, or none) and RoPE at `pos`, softmax(q·k / √D) over the cached
 * keys `0..pos-1` and the new one, times the values. Returns the output [Hq·D] and the new k, v
 * of each kv head [Hkv][D].
 */
function joinedRef(
  x: Float32Array, // this row's joined projection [(Hq + 2·Hkv)·D]
  kc: Float32Array, // the cache of this row [Hkv, Tmax, D]
  vc: Float32Array,
  o: {
    Hq: number;
    Hkv: number;
    D: number;
    Tmax: number;
    pos: number;
    eps: number;
    theta: number;
    wq: Float32Array | null;
    wk: Float32Array | null;
    bias: Float32Array | null; // [(Hq + 2·Hkv)·D], added before the norm
  },
): { out: Float64Array; k: Float64Array[]; v: Float64Array[] } {
  const { Hq, Hkv, D, Tmax, pos } = o, half = D / 2, G = Hq / Hkv;
  const head = (i: number, w: Float32Array | null, rotate: boolean) => {
    const h = Float64Array.from(
      x.subarray(i * D, i * D + D),
      (v, j) => v + (o.bias?.[i * D + j] ?? 0),
    );
    if (w) {
      const r = 1 / Math.sqrt(h.reduce((s, v) => s + v * v, 0) / D + o.eps);
      h.forEach((v, j) => (h[j] = v * r * w[j]));
    }
    if (!rotate) return h;
    const y = new Float64Array(D);
    for (let j = 0; j < half; j++) {
      const a = pos * Math.pow(o.theta, (-2 * j) / D);
      y[j] = h[j] * Math.cos(a) - h[j + half] * Math.sin(a);
      y[j + half] = h[j + half] * Math.cos(a) + h[j] * Math.sin(a);
    }
    return y;
  };
  const k = Array.from({ length: Hkv }, (_, g) => head(Hq + g, o.wk, true));
  const v = Array.from({ length: Hkv }, (_, g) => head(Hq + Hkv + g, null, false));
  const out = new Float64Array(Hq * D);
  for (let h = 0; h < Hq; h++) {
    const q = head(h, o.wq, true), g = Math.floor(h / G);
    const keyAt = (t: number, i: number) => t === pos ? k[g][i] : kc[(g * Tmax + t) * D + i];
    const valAt = (t: number, i: number) => t === pos ? v[g][i] : vc[(g * Tmax + t) * D + i];
    const sc = Array.from({ length: pos + 1 }, (_, t) => {
      let s = 0;
      for (let i = 0; i < D; i++) s += q[i] * keyAt(t, i);
      return s / Math.sqrt(D);
    });
    const m = Math.max(...sc);
    const e = sc.map((s) => Math.exp(s - m));
    const z = e.reduce((a, b) => a + b, 0);
    for (let i = 0; i < D; i++) {
      let acc = 0;
      for (let t = 0; t <= pos; t++) acc += e[t] * valAt(t, i);
      out[h * D + i] = acc / z;
    }
  }
  return { out, k, v };
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

// One kernel step on random inputs: D below, at and past the workgroup (64 lanes, so D = 160 and
// 256 loop), G = 1 and G > 1, with and without QK-norm, positions from 0 to past the workgroup
// and to the last one the kernel takes.
const KERNEL_CASES: {
  D: number;
  Hq: number;
  Hkv: number;
  norm: "qk" | "q" | "k" | "none"; // which of qNorm, kNorm the block has
  Tmax: number;
  positions: number[];
  bias?: boolean; // a random q/k/v bias
}[] = [
  { D: 8, Hq: 4, Hkv: 4, norm: "qk", Tmax: 12, positions: [0, 1, 2, 7, 11] },
  { D: 8, Hq: 4, Hkv: 2, norm: "qk", Tmax: 12, positions: [0, 5, 11], bias: true },
  { D: 32, Hq: 4, Hkv: 2, norm: "none", Tmax: 8, positions: [0, 3, 4] },
  { D: 32, Hq: 4, Hkv: 1, norm: "none", Tmax: 8, positions: [0, 4], bias: true },
  { D: 16, Hq: 2, Hkv: 1, norm: "q", Tmax: 4, positions: [0, 3] },
  { D: 16, Hq: 2, Hkv: 1, norm: "k", Tmax: 4, positions: [0, 3] },
  { D: 64, Hq: 6, Hkv: 2, norm: "qk", Tmax: 72, positions: [0, 64, 71] },
  { D: 160, Hq: 2, Hkv: 1, norm: "qk", Tmax: 70, positions: [1, 65] },
  { D: 160, Hq: 2, Hkv: 1, norm: "k", Tmax: 70, positions: [66], bias: true },
  { D: 256, Hq: 2, Hkv: 2, norm: "qk", Tmax: 6, positions: [0, 5] },
  { D: 8, Hq: 2, Hkv: 1, norm: "qk", Tmax: FUSED_DECODE_LIMITS.positions, positions: [2047] },
];

Deno.test("decodeAttentionJoined equals the float64 step and the composed path (qkvNormRope + decodeAttentionComposed), cache writes included", async () => {
  await initTensors();
  const rng = new Rng(17);
  for (const c of KERNEL_CASES) {
    const { D, Hq, Hkv, Tmax } = c;
    const cfg = validateModelConfig({
      ...BASE,
      layers: 1,
      heads: Hq,
      kvHeads: Hkv,
      headDim: D,
      maxSeqLen: Tmax,
      ropeTheta: D === 64 ? 1e6 : 10000,
      normEps: D === 32 ? 1e-5 : 1e-6,
      qkNorm: c.norm !== "none",
    });
    const model = Transformer.init(cfg, { seed: 1, std: 0.1 });
    const cacheB = 3, B = 2; // a batch smaller than the cache: row 2 must stay untouched
    const joined = new KVCache(model, cacheB, Tmax), composed = new KVCache(model, cacheB, Tmax);
    const H = Hq + 2 * Hkv, cacheSize = cacheB * Hkv * Tmax * D;
    const rand = (n: number, s = 1) => Float32Array.from({ length: n }, () => s * rng.normal());
    const wq = c.norm.includes("q")
      ? Float32Array.from({ length: D }, () => 0.5 + rng.uniform())
      : null;
    const wk = c.norm.includes("k")
      ? Float32Array.from({ length: D }, () => 0.5 + rng.uniform())
      : null;
    const wb = c.bias ? rand(H * D) : null;
    const qNorm = wq && tensor(wq), kNorm = wk && tensor(wk), bQkv = wb && tensor(wb);
    const block: BlockParams = { ...model.blocks[0], qNorm, kNorm, bQkv };
    let errRef = 0, errComposed = 0, errCache = 0, errKey = 0, kMax = 0;
    for (const pos of c.positions) {
      const x = rand(B * H * D, 2);
      const kc = rand(cacheSize), vc = rand(cacheSize);
      for (const cache of [joined, composed]) {
        fill(cache.k[0], kc);
        fill(cache.v[0], vc);
      }
      const [got, want] = await readF32(noGrad(() =>
        tidy(() => {
          const qkv = tensor(x, [B, 1, H * D]);
          const a = decodeAttentionJoined(model, block, qkv, joined, 0, pos);
          const { q, k, v } = ops.qkvNormRope(qkv, qNorm, kNorm, {
            heads: Hq,
            kvHeads: Hkv,
            headDim: D,
            eps: cfg.normEps,
            offset: pos,
            base: cfg.ropeTheta,
            bias: bQkv,
          });
          return [a, decodeAttentionComposed(q, k, v, composed, 0, pos)];
        })
      ));
      const [kj, vj, kComp, vComp] = await readF32([
        joined.k[0],
        joined.v[0],
        composed.k[0],
        composed.v[0],
      ]);
      errComposed = Math.max(errComposed, maxAbs(got, want));
      const row = Hkv * Tmax * D;
      for (let b = 0; b < cacheB; b++) {
        const ref = b < B
          ? joinedRef(
            x.subarray(b * H * D, (b + 1) * H * D),
            kc.subarray(b * row),
            vc.subarray(b * row),
            {
              ...c,
              pos,
              eps: cfg.normEps,
              theta: cfg.ropeTheta,
              wq,
              wk,
              bias: wb,
            },
          )
          : null;
        if (ref) {
          errRef = Math.max(errRef, maxAbs(got.subarray(b * Hq * D, (b + 1) * Hq * D), ref.out));
        }
        for (let g = 0; g < Hkv; g++) {
          for (let t = 0; t < Tmax; t++) {
            const at = b * row + (g * Tmax + t) * D;
            const span = (a: Float32Array) => a.subarray(at, at + D);
            if (ref && t === pos) { // the new key and value, against the reference and the composed path
              errCache = Math.max(errCache, maxAbs(span(kj), ref.k[g]), maxAbs(span(vj), ref.v[g]));
              errKey = Math.max(errKey, maxAbs(span(kj), span(kComp)));
              kMax = Math.max(kMax, ...ref.k[g].map(Math.abs));
              assert.deepEqual(span(vj), span(vComp), `D ${D} pos ${pos}: new value of row ${b}`);
            } else { // every other place of the cache is left as it was
              assert.deepEqual(span(kj), span(kc), `D ${D} pos ${pos}: key ${b},${g},${t} changed`);
              assert.deepEqual(
                span(vj),
                span(vc),
                `D ${D} pos ${pos}: value ${b},${g},${t} changed`,
              );
            }
          }
        }
      }
    }
    console.log(
      `D ${D} G ${Hq / Hkv} norm ${c.norm}${
        c.bias ? " bias" : ""
      } Tmax ${Tmax}: max |Δ| out vs float64 ` +
        `${errRef.toExponential(2)}, new k/v vs float64 ${errCache.toExponential(2)}; ` +
        `vs composed: out ${errComposed.toExponential(2)}, new k ${errKey.toExponential(2)}`,
    );
    // f32 rounds the angle pos·θ^(−2j/D) by up to pos·2⁻²⁴ rad (the composed path alike): the
    // rotated keys, so the scores, move by up to that times |k| against float64.
    const angleTol = 2 * Math.max(...c.positions) * 2 ** -24 * kMax;
    assert.ok(errRef < 2e-5 + angleTol, `D ${D}: max |out − float64| ${errRef}`);
    assert.ok(errCache < 2e-5 + angleTol, `D ${D}: max |new k/v − float64| ${errCache}`);
    assert.ok(errComposed < 2e-6, `D ${D}: max |out joined − composed| ${errComposed}`);
    assert.ok(errKey <= 1e-6, `D ${D}: max |new k joined − composed| ${errKey}`);
    for (const t of [joined, composed]) t.dispose();
    qNorm?.dispose();
    kNorm?.dispose();
    bQkv?.dispose();
    model.dispose();
  }
});

// One decode step through blocksOver with each attention: joined (decodeStep's fused path), the
// `main` entry on already split heads (decodeAttentionFused), composed.
function stepWith(
  model: Transformer,
  ids: Tensor,
  cache: KVCache,
  pos: number,
  how: "joined" | "fused" | "composed",
): Tensor {
  if (how !== "fused") return decodeStep(model, ids, cache, pos, how === "joined");
  const B = ids.shape[0];
  const x = ops.embedding(model.embed, ops.reshape(ids, [B, 1]));
  const h = model.blocksOver(
    x,
    pos,
    (l, q, k, v) => decodeAttentionFused(q, k, v, cache, l, pos),
    true,
  );
  return ops.reshape(model.classify(h), [B, model.config.vocabSize]);
}

for (
  const variant of [
    { headDim: 8, kvHeads: 2 },
    { headDim: 8, kvHeads: 4, qkNorm: false },
    { headDim: 32, kvHeads: 4, ropeTheta: 1e6 },
    { headDim: 32, kvHeads: 1, qkNorm: false },
    { headDim: 64, kvHeads: 2, tiedEmbeddings: false },
    { headDim: 8, kvHeads: 2, attentionBias: true },
    { headDim: 32, kvHeads: 1, qkNorm: false, attentionBias: true, tiedEmbeddings: false },
  ]
) {
  Deno.test(`decode steps ${JSON.stringify(variant)}: joined = composed = float64 transformer, caches equal`, async () => {
    await initTensors();
    const cfg = validateModelConfig({ ...BASE, ...variant });
    const model = randomModel(cfg, 5 + variant.headDim + variant.kvHeads);
    const B = 2, steps = 5, Tmax = 8;
    const hows = ["joined", "fused", "composed"] as const;
    const caches = hows.map(() => new KVCache(model, B, Tmax));
    const rng = new Rng(variant.headDim);
    const seqs = Array.from({ length: B }, () => [] as number[]);
    const p = await hostParams(model);
    let errComposed = 0, errFused = 0, errRef = 0;
    for (let s = 0; s < steps; s++) {
      const ids = Int32Array.from({ length: B }, () => rng.int(cfg.vocabSize));
      ids.forEach((id, b) => seqs[b].push(id));
      const [a, f, c] = await readF32(noGrad(() =>
        tidy(() => {
          const t = tensor(ids);
          return hows.map((how, i) => stepWith(model, t, caches[i], s, how));
        })
      ));
      errComposed = Math.max(errComposed, maxAbs(a, c));
      errFused = Math.max(errFused, maxAbs(f, c));
      seqs.forEach((seq, b) => {
        const ref = referenceLogits(cfg, p, seq)[s];
        const V = cfg.vocabSize;
        errRef = Math.max(errRef, maxAbs(a.subarray(b * V, (b + 1) * V), ref));
      });
    }
    let errCache = 0;
    for (let l = 0; l < cfg.layers; l++) {
      const [kj, vj, kc, vc] = await readF32([
        caches[0].k[l],
        caches[0].v[l],
        caches[2].k[l],
        caches[2].v[l],
      ]);
      const D = cfg.headDim;
      for (let r = 0; r < B * cfg.kvHeads; r++) { // positions 0..steps-1 of each (row, kv head)
        const w = (a: Float32Array) => a.subarray(r * Tmax * D, (r * Tmax + steps) * D);
        errCache = Math.max(errCache, maxAbs(w(kj), w(kc)), maxAbs(w(vj), w(vc)));
      }
    }
    console.log(
      `${JSON.stringify(variant)}: max |Δ logit| joined vs composed ${
        errComposed.toExponential(2)
      }, ` +
        `vs float64 ${errRef.toExponential(2)}; main entry vs composed ${
          errFused.toExponential(2)
        }; ` +
        `caches ${errCache.toExponential(2)}`,
    );
    assert.ok(errComposed < 1e-5, `max |Δ logit| joined vs composed ${errComposed}`);
    assert.ok(errFused < 1e-5, `max |Δ logit| decodeAttentionFused vs composed ${errFused}`);
    assert.ok(errRef < 1e-4, `max |Δ logit| joined vs float64 ${errRef}`);
    assert.ok(errCache < 1e-5, `max |Δ cache| joined vs composed ${errCache}`);
    for (const c of caches) c.dispose();
    model.dispose();
  });
}

Deno.test("decodeAttentionJoined refuses inputs it would get wrong, naming the problem", async () => {
  await initTensors();
  const model = Transformer.init({ ...BASE, maxSeqLen: FUSED_DECODE_LIMITS.positions + 1 }, {
    seed: 2,
  });
  const cache = new KVCache(model, 2, 8);
  const long = new KVCache(model, 1, FUSED_DECODE_LIMITS.positions + 1);
  const b = model.blocks[0], H = BASE.heads + 2 * BASE.kvHeads, D = BASE.headDim;
  const call = (shape: number[], pos: number, c = cache, l = 0, block = b) =>
    noGrad(() =>
      tidy(() => {
        const n = shape.reduce((p, d) => p * d, 1);
        decodeAttentionJoined(model, block, tensor(new Float32Array(n), shape), c, l, pos);
      })
    );
  assert.throws(() => call([2, 1, H * D + 1], 0), /joined projection .*\[B, 1, 64\]/);
  assert.throws(() => call([2, 2, H * D], 0), /joined projection/);
  assert.throws(() => call([3, 1, H * D], 0), /B <= 2/);
  assert.throws(() => call([2, 1, H * D], 8), /position 8 is outside the cache's \[0, 8\)/);
  assert.throws(() => call([2, 1, H * D], -1), /position -1/);
  assert.throws(() => call([1, 1, H * D], 0, long), /exceeds the fused kernel's 2048 positions/);
  assert.throws(() => call([2, 1, H * D], 0, cache, 2), /layer 2 is outside/);
  const bad = tensor(new Float32Array(D + 2));
  assert.throws(
    () => call([2, 1, H * D], 0, cache, 0, { ...b, kNorm: bad }),
    /kNorm must be \[8\]/,
  );
  assert.throws(
    () => call([2, 1, H * D], 0, cache, 0, { ...b, bQkv: bad }),
    /bQkv must be \[64\]/,
  );
  // decodeStep past the kernel's limits falls back to the composed path
  const ok = noGrad(() => tidy(() => decodeStep(model, tensor(new Int32Array([1])), long, 0)));
  assert.deepEqual(ok.shape, [1, BASE.vocabSize]);
  for (const t of [bad, ok]) t.dispose();
  cache.dispose();
  long.dispose();
  model.dispose();
});
