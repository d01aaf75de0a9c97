/**
 * Float64 references of every op in ops.ts, in plain TypeScript over row-major arrays. Tests compare
 * the GPU forward against these and the GPU backward against their central finite differences.
 * They know nothing of the GPU.
 *
 * @module
 */

/** A float64 array with a shape (row-major). */
export interface Arr {
  /** Values. */
  data: Float64Array;
  /** Dimensions. */
  shape: number[];
}

/** Builds an {@link Arr}. */
export function arr(data: ArrayLike<number>, shape: number[]): Arr {
  const n = shape.reduce((p, d) => p * d, 1);
  if (n !== data.length) throw new RangeError(`arr: ${data.length} values for shape [${shape}]`);
  return { data: Float64Array.from(data), shape: [...shape] };
}

function stridesOf(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

function bshape(a: number[], b: number[]): number[] {
  const n = Math.max(a.length, b.length);
  return Array.from({ length: n }, (_, i) => {
    const x = a[a.length - n + i] ?? 1, y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new RangeError(`broadcast [${a}] with [${b}]`);
    return x === 1 ? y : x;
  });
}

// Index into `a` for the multi-index `idx` of a broadcast output.
function bindex(a: Arr, idx: number[]): number {
  const lead = idx.length - a.shape.length;
  let off = 0;
  const st = stridesOf(a.shape);
  for (let i = 0; i < a.shape.length; i++) off += (a.shape[i] === 1 ? 0 : idx[lead + i]) * st[i];
  return off;
}

function unravel(i: number, shape: number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let k = shape.length - 1; k >= 0; k--) {
    idx[k] = i % shape[k];
    i = Math.floor(i / shape[k]);
  }
  return idx;
}

/** Elementwise map with broadcasting over any number of inputs. */
export function mapN(fn: (...v: number[]) => number, ...xs: Arr[]): Arr {
  const shape = xs.map((x) => x.shape).reduce(bshape);
  const n = shape.reduce((p, d) => p * d, 1);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const idx = unravel(i, shape);
    out[i] = fn(...xs.map((x) => x.data[bindex(x, idx)]));
  }
  return { data: out, shape };
}

/** Real power with the conventions of the kernels (x^0 = 1, odd/even integer exponents). */
export function rpow(x: number, a: number): number {
  if (a === 0) return 1;
  if (x < 0 && !Number.isInteger(a)) return NaN;
  return Math.pow(x, a);
}

const sig = (v: number) => 1 / (1 + Math.exp(-v));
const GK = Math.sqrt(2 / Math.PI);

/** Unary functions by op name, matching kernels/ops_unary.wgsl. */
export const unaryRef: Record<string, (v: number, a: number, b: number) => number> = {
  neg: (v) => -v,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  pow: (v, a) => rpow(v, a),
  affine: (v, a, b) => a * v + b,
  clamp: (v, a, b) => Math.min(Math.max(v, a), b),
  silu: (v) => v * sig(v),
  gelu: (v) => 0.5 * v * (1 + Math.tanh(GK * (v + 0.044715 * v ** 3))),
  relu: (v) => Math.max(v, 0),
  sigmoid: sig,
};

/** Binary functions by op name. */
export const binaryRef: Record<string, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: rpow,
  maximum: (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.max(a, b)),
  minimum: (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.min(a, b)),
};

/** Sum or max over `axes` (all when undefined). */
export function reduceRef(
  x: Arr,
  axes: number[] | undefined,
  op: "sum" | "mean" | "max",
  keepDims = false,
): Arr {
  const ax = (axes ?? x.shape.map((_, i) => i)).map((a) => (a < 0 ? a + x.shape.length : a));
  const kshape = x.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  const n = kshape.reduce((p, d) => p * d, 1);
  const out = new Float64Array(n).fill(op === "max" ? -Infinity : 0);
  const count = ax.reduce((p, a) => p * x.shape[a], 1);
  const ks = stridesOf(kshape);
  for (let i = 0; i < x.data.length; i++) {
    const idx = unravel(i, x.shape);
    let o = 0;
    for (let k = 0; k < idx.length; k++) o += (ax.includes(k) ? 0 : idx[k]) * ks[k];
    out[o] = op === "max" ? Math.max(out[o], x.data[i]) : out[o] + x.data[i];
  }
  if (op === "mean") { for (let i = 0; i < n; i++) out[i] /= count; }
  return { data: out, shape: keepDims ? kshape : x.shape.filter((_, i) => !ax.includes(i)) };
}

/** Softmax (or log-softmax) over the last axis. */
export function softmaxRef(x: Arr, log = false): Arr {
  const n = x.shape[x.shape.length - 1];
  const out = new Float64Array(x.data.length);
  for (let r = 0; r < x.data.length / n; r++) {
    let m = -Infinity;
    for (let i = 0; i < n; i++) m = Math.max(m, x.data[r * n + i]);
    let s = 0;
    for (let i = 0; i < n; i++) s += Math.exp(x.data[r * n + i] - m);
    for (let i = 0; i < n; i++) {
      const v = x.data[r * n + i] - m;
      out[r * n + i] = log ? v - Math.log(s) : Math.exp(v) / s;
    }
  }
  return { data: out, shape: [...x.shape] };
}

/** Cross-entropy per row (0 where ignored) and its mean over valid rows or sum. */
export function crossEntropyRef(
  x: Arr,
  targets: ArrayLike<number>,
  ignore: number,
  reduction: "mean" | "sum" | "none",
): Arr {
  const ls = softmaxRef(x, true);
  const V = x.shape[x.shape.length - 1];
  const rows = targets.length;
  const per = new Float64Array(rows);
  let valid = 0;
  for (let r = 0; r < rows; r++) {
    if (targets[r] === ignore) continue;
    per[r] = -ls.data[r * V + targets[r]];
    valid++;
  }
  if (reduction === "none") return { data: per, shape: x.shape.slice(0, -1) };
  const s = per.reduce((a, b) => a + b, 0);
  return { data: Float64Array.of(reduction === "mean" ? s / Math.max(1, valid) : s), shape: [] };
}

/** x[..., ids[...]] along the last axis. */
export function gatherLastRef(x: Arr, ids: ArrayLike<number>): Arr {
  const V = x.shape[x.shape.length - 1];
  return {
    data: Float64Array.from({ length: ids.length }, (_, r) => x.data[r * V + ids[r]]),
    shape: x.shape.slice(0, -1),
  };
}

/** Rows of `table` [V, C] at `ids`. */
export function embeddingRef(table: Arr, ids: ArrayLike<number>, idsShape: number[]): Arr {
  const C = table.shape[1];
  const out = new Float64Array(ids.length * C);
  for (let n = 0; n < ids.length; n++) {
    for (let c = 0; c < C; c++) out[n * C + c] = table.data[ids[n] * C + c];
  }
  return { data: out, shape: [...idsShape, C] };
}

/** RMSNorm over the last axis. */
export function rmsNormRef(x: Arr, w: Arr, eps: number): Arr {
  const C = w.data.length;
  const out = new Float64Array(x.data.length);
  for (let r = 0; r < x.data.length / C; r++) {
    let ss = 0;
    for (let i = 0; i < C; i++) ss += x.data[r * C + i] ** 2;
    const rs = 1 / Math.sqrt(ss / C + eps);
    for (let i = 0; i < C; i++) out[r * C + i] = x.data[r * C + i] * rs * w.data[i];
  }
  return { data: out, shape: [...x.shape] };
}

/** LayerNorm over the last axis (biased variance). */
export function layerNormRef(x: Arr, w: Arr, b: Arr, eps: number): Arr {
  const C = w.data.length;
  const out = new Float64Array(x.data.length);
  for (let r = 0; r < x.data.length / C; r++) {
    let m = 0;
    for (let i = 0; i < C; i++) m += x.data[r * C + i];
    m /= C;
    let v = 0;
    for (let i = 0; i < C; i++) v += (x.data[r * C + i] - m) ** 2;
    const rs = 1 / Math.sqrt(v / C + eps);
    for (let i = 0; i < C; i++) {
      out[r * C + i] = (x.data[r * C + i] - m) * rs * w.data[i] + b.data[i];
    }
  }
  return { data: out, shape: [...x.shape] };
}

/** RoPE ("rotate half") on [..., T, H, D] ("bthd") or [..., H, T, D] ("bhtd"). */
export function ropeRef(x: Arr, layout: "bthd" | "bhtd", offset: number, base: number): Arr {
  const r = x.shape.length;
  const D = x.shape[r - 1];
  const [T, tDiv] = layout === "bthd" ? [x.shape[r - 3], x.shape[r - 2]] : [x.shape[r - 2], 1];
  const out = new Float64Array(x.data.length);
  const half = D / 2;
  for (let row = 0; row < x.data.length / D; row++) {
    const t = Math.floor(row / tDiv) % T;
    for (let j = 0; j < half; j++) {
      const ang = (offset + t) * Math.pow(base, (-2 * j) / D);
      const a = row * D + j;
      const x1 = x.data[a], x2 = x.data[a + half];
      out[a] = x1 * Math.cos(ang) - x2 * Math.sin(ang);
      out[a + half] = x2 * Math.cos(ang) + x1 * Math.sin(ang);
    }
  }
  return { data: out, shape: [...x.shape] };
}

/** Batched matmul: a [..., M, K] · b [K, N] or [..., K, N] with equal batch axes. */
export function matmulRef(a: Arr, b: Arr): Arr {
  const K = a.shape[a.shape.length - 1];
  const N = b.shape[b.shape.length - 1];
  const M = a.shape[a.shape.length - 2] ?? 1;
  const shared = b.shape.length === 2;
  const batch = shared ? a.data.length / (M * K) : a.data.length / (M * K);
  const out = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    const ao = z * M * K, bo = shared ? 0 : z * K * N;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a.data[ao + i * K + k] * b.data[bo + k * N + j];
        out[z * M * N + i * N + j] = s;
      }
    }
  }
  return { data: out, shape: [...a.shape.slice(0, -1), N] };
}

/** Permutes axes (a copy). */
export function permuteRef(x: Arr, perm: number[]): Arr {
  const shape = perm.map((p) => x.shape[p]);
  const st = stridesOf(x.shape);
  const out = new Float64Array(x.data.length);
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    let o = 0;
    for (let k = 0; k < perm.length; k++) o += idx[k] * st[perm[k]];
    out[i] = x.data[o];
  }
  return { data: out, shape };
}

/** Swaps the last two axes (a copy). */
export function transposeRef(x: Arr): Arr {
  const p = x.shape.map((_, i) => i);
  const r = p.length;
  [p[r - 2], p[r - 1]] = [p[r - 1], p[r - 2]];
  return permuteRef(x, p);
}

/** Elements start..end of `axis`. */
export function sliceRef(x: Arr, axis: number, start: number, end: number): Arr {
  const shape = [...x.shape];
  shape[axis] = end - start;
  const n = shape.reduce((p, d) => p * d, 1);
  const st = stridesOf(x.shape);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const idx = unravel(i, shape);
    idx[axis] += start;
    out[i] = x.data[idx.reduce((o, v, k) => o + v * st[k], 0)];
  }
  return { data: out, shape };
}

/** Concatenation along `axis`. */
export function concatRef(xs: Arr[], axis: number): Arr {
  const shape = [...xs[0].shape];
  shape[axis] = xs.reduce((s, x) => s + x.shape[axis], 0);
  const n = shape.reduce((p, d) => p * d, 1);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const idx = unravel(i, shape);
    let k = 0;
    while (idx[axis] >= xs[k].shape[axis]) idx[axis] -= xs[k++].shape[axis];
    const st = stridesOf(xs[k].shape);
    out[i] = xs[k].data[idx.reduce((o, v, j) => o + v * st[j], 0)];
  }
  return { data: out, shape };
}

/**
 * Causal grouped-query attention: q [B,Tq,Hq,D], k/v [B,Tk,Hkv,D] (Tk >= Tq; query i sees keys
 * 0..i + Tk − Tq) → [B,Tq,Hq,D].
 */
export function attentionRef(q: Arr, k: Arr, v: Arr, scale?: number): Arr {
  const [B, T, Hq, D] = q.shape;
  const [, Tk, Hkv] = k.shape;
  const G = Hq / Hkv;
  const sc = scale ?? 1 / Math.sqrt(D);
  const out = new Float64Array(q.data.length);
  const at = (x: Arr, TT: number, H: number, b: number, t: number, h: number, d: number) =>
    x.data[((b * TT + t) * H + h) * D + d];
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const kh = Math.floor(h / G);
      for (let t = 0; t < T; t++) {
        const last = t + Tk - T;
        const s = new Float64Array(last + 1);
        let m = -Infinity;
        for (let u = 0; u <= last; u++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += at(q, T, Hq, b, t, h, d) * at(k, Tk, Hkv, b, u, kh, d);
          s[u] = dot * sc;
          m = Math.max(m, s[u]);
        }
        let z = 0;
        for (let u = 0; u <= last; u++) z += s[u] = Math.exp(s[u] - m);
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let u = 0; u <= last; u++) acc += (s[u] / z) * at(v, Tk, Hkv, b, u, kh, d);
          out[((b * T + t) * Hq + h) * D + d] = acc;
        }
      }
    }
  }
  return { data: out, shape: [...q.shape] };
}

/**
 * Central finite differences of `Σ f(inputs) ⊙ w` with respect to every element of `inputs[which]`.
 */
export function finiteDiff(
  f: (xs: Arr[]) => Arr,
  inputs: Arr[],
  which: number,
  w: Float64Array,
  h = 1e-5,
): Float64Array {
  const x = inputs[which];
  const g = new Float64Array(x.data.length);
  const dot = (a: Arr) => a.data.reduce((s, v, i) => s + v * w[i], 0);
  for (let i = 0; i < g.length; i++) {
    const keep = x.data[i];
    x.data[i] = keep + h;
    const up = dot(f(inputs));
    x.data[i] = keep - h;
    const down = dot(f(inputs));
    x.data[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

/** Options of {@link adamwRef}, as {@link AdamW}'s. */
export interface AdamWRefOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  maxGradNorm: number;
}

/**
 * One AdamW step in float64 over several parameters in place (moments `m`, `v` in place too), with
 * global-norm clipping; `decay[i]` says whether parameter i decays; a parameter whose gradient is
 * null is skipped (as PyTorch does). Returns [norm, clip scale].
 */
export function adamwRef(
  ps: Float64Array[],
  gs: (Float64Array | null)[],
  m: Float64Array[],
  v: Float64Array[],
  decay: boolean[],
  t: number,
  o: AdamWRefOptions,
): [number, number] {
  let ss = 0;
  for (const g of gs) for (const x of g ?? []) ss += x * x;
  const norm = Math.sqrt(ss);
  const scale = o.maxGradNorm > 0 ? Math.min(1, o.maxGradNorm / (norm + 1e-6)) : 1;
  const bc1 = 1 - o.beta1 ** t, bc2 = 1 - o.beta2 ** t;
  ps.forEach((p, i) => {
    const gi = gs[i];
    if (!gi) return;
    for (let j = 0; j < p.length; j++) {
      const g = gi[j] * scale;
      m[i][j] = o.beta1 * m[i][j] + (1 - o.beta1) * g;
      v[i][j] = o.beta2 * v[i][j] + (1 - o.beta2) * g * g;
      const wd = decay[i] ? o.weightDecay : 0;
      p[j] -= o.lr * (m[i][j] / bc1 / (Math.sqrt(v[i][j] / bc2) + o.eps) + wd * p[j]);
    }
  });
  return [norm, scale];
}

/** RMSNorm over the last axis, then RoPE: `ropeRef(rmsNormRef(x, w, eps), layout, offset, base)`. */
export function rmsNormRopeRef(
  x: Arr,
  w: Arr,
  eps: number,
  layout: "bthd" | "bhtd",
  offset: number,
  base: number,
): Arr {
  return ropeRef(rmsNormRef(x, w, eps), layout, offset, base);
}
