// Shared by the fused attention tests (v1: autograd_attention_fused_test.ts, v2:
// autograd_attention_flash_test.ts): the cases, their seeded inputs, the float64 analytic
// backward, and a small transformer's loss and gradients with fused against composed attention.
import type { Arr } from "../src/autograd/reference.ts";
import { setAttentionImpl } from "../src/autograd/mod.ts";
import {
  type FusedAttentionVersion,
  setFusedAttentionVersion,
} from "../src/autograd/attention_fused.ts";
import { readAll, tensor, tidy } from "../src/tensor/mod.ts";
import { validateModelConfig } from "../src/nn/config.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { Rng } from "../src/util/rng.ts";
import { assertClose, assertNoGpuErrors, closeness, randArr } from "./autograd_util.ts";

/** One attention shape. */
export interface Case {
  B: number;
  Tq: number;
  Tk: number;
  Hq: number;
  Hkv: number;
  D: number;
  /** Multiplies q: 30 gives peaked rows, 0 flat ones (uniform attention). */
  qScale?: number;
}

export function inputs(rng: Rng, c: Case): [Arr, Arr, Arr] {
  return [
    randArr(rng, [c.B, c.Tq, c.Hq, c.D], c.qScale ?? 1),
    randArr(rng, [c.B, c.Tk, c.Hkv, c.D]),
    randArr(rng, [c.B, c.Tk, c.Hkv, c.D]),
  ];
}

export const label = (c: Case) =>
  `B=${c.B} Tq=${c.Tq} Tk=${c.Tk} Hq=${c.Hq} Hkv=${c.Hkv} D=${c.D}` +
  (c.qScale !== undefined ? ` q×${c.qScale}` : "");

/**
 * Float64 gradients of Σ attention(q, k, v) ⊙ dO with respect to q, k and v, written out as the
 * kernel computes them (P from the scores, dS = P ⊙ (dO·Vᵀ − rowsum(dO ∘ O))); checked against
 * finite differences of `attentionRef` below before it checks anything else.
 */
export function attentionBackwardRef(q: Arr, k: Arr, v: Arr, dO: Arr, scale?: number): Arr[] {
  const [B, T, Hq, D] = q.shape;
  const [, Tk, Hkv] = k.shape;
  const G = Hq / Hkv;
  const sc = scale ?? 1 / Math.sqrt(D);
  const dq = new Float64Array(q.data.length);
  const dk = new Float64Array(k.data.length);
  const dv = new Float64Array(v.data.length);
  const ix = (TT: number, H: number, b: number, t: number, h: number) => ((b * TT + t) * H + h) * D;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const kh = Math.floor(h / G);
      for (let t = 0; t < T; t++) {
        const last = t + Tk - T;
        const qi = ix(T, Hq, b, t, h);
        const p = new Float64Array(last + 1);
        let m = -Infinity;
        for (let u = 0; u <= last; u++) {
          let s = 0;
          for (let d = 0; d < D; d++) s += q.data[qi + d] * k.data[ix(Tk, Hkv, b, u, kh) + d];
          p[u] = s * sc;
          m = Math.max(m, p[u]);
        }
        let z = 0;
        for (let u = 0; u <= last; u++) z += p[u] = Math.exp(p[u] - m);
        for (let u = 0; u <= last; u++) p[u] /= z;
        const dp = new Float64Array(last + 1);
        let delta = 0;
        for (let u = 0; u <= last; u++) {
          const vi = ix(Tk, Hkv, b, u, kh);
          for (let d = 0; d < D; d++) dp[u] += dO.data[qi + d] * v.data[vi + d];
          delta += p[u] * dp[u];
        }
        for (let u = 0; u <= last; u++) {
          const ki = ix(Tk, Hkv, b, u, kh);
          const ds = p[u] * (dp[u] - delta) * sc;
          for (let d = 0; d < D; d++) {
            dq[qi + d] += ds * k.data[ki + d];
            dk[ki + d] += ds * q.data[qi + d];
            dv[ki + d] += p[u] * dO.data[qi + d];
          }
        }
      }
    }
  }
  return [dq, dk, dv].map((data, i) => ({ data, shape: [...[q, k, v][i].shape] }));
}

/**
 * A two-layer transformer (hidden `hidden`, 4 heads over 2 kv heads of 8, QK-norm, positions up to
 * `maxSeqLen`) on a [2, T] batch: asserts its loss and every parameter gradient with fused attention of `version` equal the
 * composed ops' (atol 1e-7, rtol 1e-4) and returns the worst closeness.
 */
export async function transformerFusedVsComposed(
  version: FusedAttentionVersion,
  hidden: number,
  maxSeqLen: number,
  T: number,
): Promise<number> {
  const cfg = validateModelConfig({
    vocabSize: 13,
    hidden,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    headDim: 8,
    intermediate: 24,
    maxSeqLen,
    ropeTheta: 10000,
    normEps: 1e-6,
    tiedEmbeddings: true,
    qkNorm: true,
  });
  const rng = new Rng(51);
  const B = 2;
  const toks = Int32Array.from({ length: B * T }, () => rng.int(cfg.vocabSize));
  const tgts = Int32Array.from(toks, (_, i) => (i % T < T - 1 ? toks[i + 1] : -1));
  const run = async (impl: "fused" | "composed") => {
    const prev = setAttentionImpl(impl);
    const prevVersion = setFusedAttentionVersion(version);
    try {
      const model = Transformer.init(cfg, { seed: 3, std: 0.3 });
      const params = model.parameters();
      const loss = tidy(() => {
        const l = model.loss(tensor(toks, [B, T]), tensor(tgts, [B, T]));
        l.backward();
        return l;
      });
      const vals = await readAll([loss, ...params.map((p) => p.grad!)]);
      loss.dispose();
      params.forEach((p) => p.dispose());
      return vals;
    } finally {
      setAttentionImpl(prev);
      setFusedAttentionVersion(prevVersion);
    }
  };
  const composed = await run("composed"), fused = await run("fused");
  assertNoGpuErrors();
  let worst = 0;
  composed.forEach((want, i) => {
    const what = `transformer v${version} ${i === 0 ? "loss" : `gradient ${i - 1}`}`;
    assertClose(what, fused[i], want, 1e-7, 1e-4);
    worst = Math.max(worst, closeness(fused[i], want, 1e-7, 1e-4));
  });
  return worst;
}
