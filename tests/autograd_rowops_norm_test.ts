// RMSNorm and LayerNorm on every kernel path of kernels/ops_norm.wgsl: the fused vec4 backward
// (C % 4 == 0, C ≤ 4096: dx and per-block weight-gradient partials in one pass, folded by a column
// sum) with one or many rows per block, the tiled vec4 kernels for rows longer than one register
// tile (C > 4096), and the scalar kernels (C % 4 != 0). Forward against the float64 references,
// backward against float64 closed forms (checked against finite differences on small shapes).
import { ops } from "../src/autograd/mod.ts";
import { type Arr, layerNormRef, rmsNormRef } from "../src/autograd/reference.ts";
import { readAll, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { assertClose, assertNoGpuErrors, checkOp, randArr, setup, up } from "./autograd_util.ts";

const rng = new Rng(5);
const EPS = 1e-5;

// dx, dw (and db) of y = norm(x)·w (+ b) for the upstream gradient gy, in float64.
function normGradRef(kind: "rms" | "ln", x: Arr, w: Arr, gy: Arr): Float64Array[] {
  const C = w.data.length, R = x.data.length / C;
  const dx = new Float64Array(x.data.length), dw = new Float64Array(C), db = new Float64Array(C);
  for (let r = 0; r < R; r++) {
    const xr = x.data.subarray(r * C, (r + 1) * C), gr = gy.data.subarray(r * C, (r + 1) * C);
    let mean = 0;
    if (kind === "ln") { for (let i = 0; i < C; i++) mean += xr[i] / C; }
    let v = 0;
    for (let i = 0; i < C; i++) v += (xr[i] - mean) ** 2 / C;
    const rs = 1 / Math.sqrt(v + EPS);
    let a = 0, b = 0; // mean(g·w), mean(g·w·xhat)
    for (let i = 0; i < C; i++) {
      const xh = (xr[i] - mean) * rs, g = gr[i] * w.data[i];
      a += g / C;
      b += (g * xh) / C;
      dw[i] += gr[i] * xh;
      db[i] += gr[i];
    }
    for (let i = 0; i < C; i++) {
      const xh = (xr[i] - mean) * rs, g = gr[i] * w.data[i];
      dx[r * C + i] = rs * (g - (kind === "ln" ? a : 0) - xh * b);
    }
  }
  return kind === "ln" ? [dx, dw, db] : [dx, dw];
}

async function checkNorm(kind: "rms" | "ln", R: number, C: number, scale = 2): Promise<void> {
  const x = randArr(rng, [R, C], scale, 0.5);
  for (let i = 0; i < C; i++) x.data[i] += 300 * scale; // far from 0: LayerNorm must not cancel
  if (R > 2 && kind === "rms") x.data.fill(0, 2 * C, 3 * C); // a zero row: y = 0, finite dx
  const w = randArr(rng, [C], 0.5, 1), b = randArr(rng, [C]);
  const gy = randArr(rng, [R, C]);
  const [xt, wt, bt] = [up(x, true), up(w, true), up(b, true)];
  const y = tidy(() => {
    const out = kind === "rms" ? ops.rmsNorm(xt, wt, EPS) : ops.layerNorm(xt, wt, bt, EPS);
    out.backward(up(gy));
    return out;
  });
  const grads = kind === "rms" ? [xt.grad!, wt.grad!] : [xt.grad!, wt.grad!, bt.grad!];
  const got = await readAll([y, ...grads]);
  assertNoGpuErrors();
  const name = `${kind}Norm [${R}, ${C}]`;
  const want = kind === "rms" ? rmsNormRef(x, w, EPS) : layerNormRef(x, w, b, EPS);
  // atol 3e-4: the row shifted by 300·scale carries f32 rounding of its mean (~1e-4)
  assertClose(`${name} forward`, got[0], want.data, 3e-4, 1e-4);
  normGradRef(kind, x, w, gy).forEach((g, i) => {
    assertClose(`${name} ${["dx", "dw", "db"][i]}`, got[i + 1], g, 2e-3, 2e-3);
  });
  for (const t of [y, xt, wt, bt]) t.dispose();
}

Deno.test("norm gradient closed forms agree with finite differences (small shapes, all paths)", async () => {
  await setup();
  for (const [R, C] of [[3, 8], [2, 4100], [3, 7]]) {
    const x = randArr(rng, [R, C], 2, 0.5), w = randArr(rng, [C], 0.5, 1), b = randArr(rng, [C]);
    const gy = randArr(rng, [R, C]);
    const dot = (y: Arr) => y.data.reduce((s, v, i) => s + v * gy.data[i], 0);
    for (const kind of ["rms", "ln"] as const) {
      const f = (xs: Arr[]) =>
        kind === "rms" ? rmsNormRef(xs[0], xs[1], EPS) : layerNormRef(xs[0], xs[1], xs[2], EPS);
      const want = normGradRef(kind, x, w, gy);
      // central differences at a few coordinates of each input
      want.forEach((g, wi) => {
        for (const j of [0, 1, g.length - 1]) {
          const h = 1e-4;
          const at = (d: number) => {
            const xs = [x, w, b].map((a) => ({ data: a.data.slice(), shape: a.shape }));
            xs[wi].data[j] += d;
            return dot(f(xs));
          };
          const fd = (at(h) - at(-h)) / (2 * h);
          assertClose(
            `${kind} [${R}, ${C}] closed form input ${wi}[${j}]`,
            [g[j]],
            [fd],
            1e-5,
            1e-4,
          );
        }
      });
    }
  }
  // and the GPU ops through checkOp's own finite differences, on the fused and scalar paths
  for (const C of [8, 7]) {
    const x = randArr(rng, [3, C], 2, 0.5), w = randArr(rng, [C], 0.5, 1), b = randArr(rng, [C]);
    await checkOp({
      name: `rmsNorm [3, ${C}]`,
      inputs: [x, w],
      gpu: ([a, g]) => ops.rmsNorm(a, g, EPS),
      ref: ([a, g]) => rmsNormRef(a, g, EPS),
    });
    await checkOp({
      name: `layerNorm [3, ${C}]`,
      inputs: [x, w, b],
      gpu: ([a, g, c]) => ops.layerNorm(a, g, c, EPS),
      ref: ([a, g, c]) => layerNormRef(a, g, c, EPS),
    });
  }
});

Deno.test("RMSNorm and LayerNorm: fused vec4 backward, one row and many rows per block", async () => {
  await setup();
  // [R, C]: C/4 within one, two and four vec4 per thread (K = 1, 2, 4); 1 row; 3 and 9 rows per
  // block (their partials folded)
  for (const [R, C] of [[3, 8], [5, 1028], [2, 2052], [1, 4096], [600, 12], [2100, 4]]) {
    await checkNorm("rms", R, C);
    await checkNorm("ln", R, C);
  }
  // 20 rows per block with rstd ≈ 100: a thread's lanes past C must stay 0 across the rows
  await checkNorm("ln", 5120, 4, 0.01);
  // past 256 × 512 rows a block stops growing (llvmpipe's loop limit): 274 blocks, a two-level fold
  await checkNorm("rms", 140_000, 4);
});

Deno.test("RMSNorm and LayerNorm: rows longer than a register tile, and odd row lengths", async () => {
  await setup();
  for (const [R, C] of [[3, 4100], [2, 8196], [4, 5], [3, 1030], [300, 7]]) {
    await checkNorm("rms", R, C);
    await checkNorm("ln", R, C);
  }
});
