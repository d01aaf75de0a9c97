/**
 * Float64 reference of the transformer's forward pass and loss on host arrays, written for
 * clarity, not speed: the GPU model's tests compare logits against it and check gradients by
 * central finite differences of {@link referenceLoss}.
 *
 * @module
 */
import type { ModelConfig } from "./config.ts";
import { EMBED_TOKENS, FINAL_NORM, LM_HEAD, qwenLayerNames } from "./checkpoint/mod.ts";
import { toQwenConfig } from "./config.ts";

/** Parameters by HF name as float64 arrays (row-major, HF layout). */
export type RefParams = Map<string, Float64Array>;

function rmsNormRow(x: Float64Array, w: Float64Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const r = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * r * w[i]);
}

/** y = W·x for W [out, in] row-major. */
function linear(w: Float64Array, x: Float64Array, out: number): Float64Array {
  const n = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += w[o * n + i] * x[i];
    y[o] = s;
  }
  return y;
}

function ropeHead(x: Float64Array, pos: number, theta: number): Float64Array {
  const D = x.length, half = D / 2;
  const y = new Float64Array(D);
  for (let j = 0; j < half; j++) {
    const a = pos * Math.pow(theta, (-2 * j) / D);
    const c = Math.cos(a), s = Math.sin(a);
    y[j] = x[j] * c - x[j + half] * s;
    y[j + half] = x[j + half] * c + x[j] * s;
  }
  return y;
}

/** Logits `[T, V]` of one sequence (float64). */
export function referenceLogits(
  c: ModelConfig,
  p: RefParams,
  tokens: ArrayLike<number>,
): Float64Array[] {
  const q = toQwenConfig(c);
  const T = tokens.length, C = c.hidden, D = c.headDim, G = c.heads / c.kvHeads;
  const get = (n: string) => {
    const t = p.get(n);
    if (!t) throw new Error(`reference: missing ${n}`);
    return t;
  };
  const E = get(EMBED_TOKENS);
  let xs = Array.from({ length: T }, (_, t) => E.slice(tokens[t] * C, tokens[t] * C + C));
  for (let l = 0; l < c.layers; l++) {
    const n = qwenLayerNames(q, l);
    const qs: Float64Array[][] = [], ks: Float64Array[][] = [], vs: Float64Array[][] = [];
    for (let t = 0; t < T; t++) {
      const h = rmsNormRow(xs[t], get(n.inputLayernorm), c.normEps);
      // with attentionBias, the biases are added before QK-norm and RoPE (as transformers does)
      const biased = (a: Float64Array, bias?: string) => {
        if (c.attentionBias) a.forEach((v, i) => (a[i] = v + get(bias!)[i]));
        return a;
      };
      const qa = biased(linear(get(n.qProj), h, c.heads * D), n.qBias);
      const ka = biased(linear(get(n.kProj), h, c.kvHeads * D), n.kBias);
      const va = biased(linear(get(n.vProj), h, c.kvHeads * D), n.vBias);
      const split = (a: Float64Array, H: number, norm?: string) =>
        Array.from({ length: H }, (_, i) => {
          let x: Float64Array = a.slice(i * D, i * D + D);
          if (norm) x = rmsNormRow(x, get(norm), c.normEps);
          return x;
        });
      qs.push(split(qa, c.heads, n.qNorm).map((x) => ropeHead(x, t, c.ropeTheta)));
      ks.push(split(ka, c.kvHeads, n.kNorm).map((x) => ropeHead(x, t, c.ropeTheta)));
      vs.push(split(va, c.kvHeads));
    }
    xs = xs.map((x, t) => {
      const att = new Float64Array(c.heads * D);
      for (let h = 0; h < c.heads; h++) {
        const kv = Math.floor(h / G);
        const sc = new Float64Array(t + 1);
        let m = -Infinity;
        for (let u = 0; u <= t; u++) {
          let s = 0;
          for (let d = 0; d < D; d++) s += qs[t][h][d] * ks[u][kv][d];
          sc[u] = s / Math.sqrt(D);
          m = Math.max(m, sc[u]);
        }
        let z = 0;
        for (let u = 0; u <= t; u++) z += sc[u] = Math.exp(sc[u] - m);
        for (let u = 0; u <= t; u++) {
          for (let d = 0; d < D; d++) att[h * D + d] += (sc[u] / z) * vs[u][kv][d];
        }
      }
      const o = linear(get(n.oProj), att, C);
      const x1 = x.map((v, i) => v + o[i]);
      const h2 = rmsNormRow(x1, get(n.postAttentionLayernorm), c.normEps);
      const g = linear(get(n.gateProj), h2, c.intermediate);
      const up = linear(get(n.upProj), h2, c.intermediate);
      const act = g.map((v, i) => (v / (1 + Math.exp(-v))) * up[i]);
      const dn = linear(get(n.downProj), act, C);
      return x1.map((v, i) => v + dn[i]);
    });
  }
  const head = c.tiedEmbeddings ? E : get(LM_HEAD);
  return xs.map((x) => linear(head, rmsNormRow(x, get(FINAL_NORM), c.normEps), c.vocabSize));
}

/** Mean cross-entropy over every target != `ignoreIndex` of a batch of sequences (float64). */
export function referenceLoss(
  c: ModelConfig,
  p: RefParams,
  tokens: readonly ArrayLike<number>[],
  targets: readonly ArrayLike<number>[],
  ignoreIndex = -1,
): number {
  let sum = 0, n = 0;
  tokens.forEach((seq, b) => {
    const logits = referenceLogits(c, p, seq);
    logits.forEach((row, t) => {
      const y = targets[b][t];
      if (y === ignoreIndex) return;
      let m = -Infinity;
      for (const v of row) m = Math.max(m, v);
      let z = 0;
      for (const v of row) z += Math.exp(v - m);
      sum += m + Math.log(z) - row[y];
      n++;
    });
  });
  return n === 0 ? 0 : sum / n;
}
