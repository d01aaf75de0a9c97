// Softmax, log-softmax and cross-entropy on every kernel path: the register-tiled vec4 kernels
// (row length % 4 == 0; one tile up to 4096, several beyond), the scalar kernels (odd lengths),
// one row and many, with -inf entries, rows masked with the most negative f32, peaked and flat
// rows, and ignored / edge targets. Forward against the float64 references, backward against
// float64 closed forms (checked against finite differences by checkOp on small shapes).
import { ops } from "../src/autograd/mod.ts";
import { type Arr, crossEntropyRef, softmaxRef } from "../src/autograd/reference.ts";
import { readAll, tensor, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { assertClose, assertNoGpuErrors, checkOp, randArr, setup, up } from "./autograd_util.ts";

const rng = new Rng(13);
// K = 1, 2, 4 vec4 per thread; two and three tiles; scalar rows
const LENGTHS = [8, 1028, 2052, 4096, 4100, 8196, 7, 1030];

// Rows of n logits: random (scale 3), flat, peaked near -200, with -inf entries, masked with
// -3.4e38.
function logits(R: number, n: number): Arr {
  const x = randArr(rng, [R, n], 3);
  const row = (r: number, f: (i: number) => number) => {
    if (r < R) { for (let i = 0; i < n; i++) x.data[r * n + i] = f(i); }
  };
  row(1, () => 0.25);
  // far below 0 (a max taken as 0 would underflow every exp), peaked at the row's last element
  row(2, (i) => (i === n - 1 ? -160 : -200 + x.data[2 * n + i]));
  row(3, (i) => (i % 3 === 0 ? x.data[3 * n + i] : -Infinity));
  row(4, (i) => (i === n - 2 ? 1 : -3.4028234663852886e38));
  return x;
}

// dx of softmax (y = softmax) or log-softmax (y = log-softmax) for upstream g, from the f64 y.
function softmaxGradRef(y: Arr, g: Arr, log: boolean): Float64Array {
  const n = y.shape[y.shape.length - 1];
  const dx = new Float64Array(y.data.length);
  for (let r = 0; r < y.data.length / n; r++) {
    let d = 0;
    for (let i = r * n; i < (r + 1) * n; i++) d += log ? g.data[i] : g.data[i] * y.data[i];
    for (let i = r * n; i < (r + 1) * n; i++) {
      dx[i] = log ? g.data[i] - Math.exp(y.data[i]) * d : y.data[i] * (g.data[i] - d);
    }
  }
  return dx;
}

Deno.test("softmax and log-softmax: vec4 register tiles, multi-tile rows, scalar rows", async () => {
  await setup();
  for (const n of LENGTHS) {
    for (const R of [1, 5]) {
      const x = logits(R, n), g = randArr(rng, [R, n]);
      const xt = up(x, true), xl = up(x, true);
      const ys = tidy(() => {
        const y = ops.softmax(xt), yl = ops.logSoftmax(xl);
        y.backward(up(g));
        yl.backward(up(g));
        return [y, yl];
      });
      const got = await readAll([...ys, xt.grad!, xl.grad!]);
      assertNoGpuErrors();
      const [ref, refLog] = [softmaxRef(x), softmaxRef(x, true)];
      assertClose(`softmax [${R}, ${n}]`, got[0], ref.data, 1e-6, 1e-4);
      assertClose(`logSoftmax [${R}, ${n}]`, got[1], refLog.data, 1e-4, 1e-5);
      assertClose(`softmax dx [${R}, ${n}]`, got[2], softmaxGradRef(ref, g, false), 1e-5, 1e-3);
      assertClose(
        `logSoftmax dx [${R}, ${n}]`,
        got[3],
        softmaxGradRef(refLog, g, true),
        1e-4,
        1e-3,
      );
      for (const t of [...ys, xt, xl]) t.dispose();
    }
  }
  // the closed forms against finite differences, vec4 and scalar
  for (const n of [8, 7]) {
    for (const log of [false, true]) {
      await checkOp({
        name: `${log ? "logSoftmax" : "softmax"} [3, ${n}]`,
        inputs: [randArr(rng, [3, n], 2)],
        gpu: ([t]) => (log ? ops.logSoftmax(t) : ops.softmax(t)),
        ref: ([t]) => softmaxRef(t, log),
      });
    }
  }
});

Deno.test("softmax of a row of all -inf is NaN on the vec4 and scalar paths", async () => {
  await setup();
  for (const n of [8, 7]) {
    const x = tensor(new Float32Array(2 * n).fill(-Infinity).fill(0, n), [2, n]);
    const y = tidy(() => ops.softmax(x));
    const [got] = await readAll([y]);
    assertNoGpuErrors();
    for (let i = 0; i < n; i++) {
      if (!Number.isNaN(got[i]) || Math.abs(got[n + i] - 1 / n) > 1e-6) {
        throw new Error(`n=${n}: all -inf row must be NaN and a zero row uniform, got ${got}`);
      }
    }
    y.dispose();
    x.dispose();
  }
});

Deno.test("cross-entropy: vec4 rows (one and several tiles) and scalar rows, ignore index, edge targets", async () => {
  await setup();
  for (const V of LENGTHS) {
    const R = 6;
    const x = logits(R, V);
    // row 3 has -inf entries: its target (0) is finite there; row 4 targets its only finite logit
    const ids = [V - 1, 0, V - 1, 0, V - 2, -7];
    const t = tensor(new Int32Array(ids), [R]);
    for (const reduction of ["mean", "sum", "none"] as const) {
      const xt = up(x, true);
      const g = reduction === "none"
        ? randArr(rng, [R])
        : { data: Float64Array.of(1.5), shape: [] };
      const out = tidy(() => {
        const l = ops.crossEntropy(xt, t, { ignoreIndex: -7, reduction });
        l.backward(up(g));
        return l;
      });
      const got = await readAll([out, xt.grad!]);
      assertNoGpuErrors();
      const name = `crossEntropy ${reduction} V=${V}`;
      assertClose(`${name} loss`, got[0], crossEntropyRef(x, ids, -7, reduction).data, 1e-4, 1e-5);
      // dx = (softmax − onehot) · g · scale, 0 on the ignored row
      const p = softmaxRef(x);
      const valid = ids.filter((i) => i !== -7).length;
      const dx = p.data.map((v, i) => {
        const r = Math.floor(i / V);
        if (ids[r] === -7) return 0;
        const gr = reduction === "none"
          ? g.data[r]
          : g.data[0] / (reduction === "mean" ? valid : 1);
        return (v - (i % V === ids[r] ? 1 : 0)) * gr;
      });
      assertClose(`${name} dx`, got[1], dx, 1e-6, 1e-4);
      out.dispose();
      xt.dispose();
    }
    t.dispose();
  }
  // 1500 rows: the finalize kernel's four-rows-per-trip loop, with every third target ignored
  const many = Array.from({ length: 1500 }, (_, i) => (i % 3 === 0 ? -100 : (i * 5) % 8));
  const xm = randArr(rng, [1500, 8], 2);
  const tm = tensor(new Int32Array(many), [1500]);
  const lm = tidy(() => ops.crossEntropy(up(xm), tm));
  const [gotm] = await readAll([lm]);
  assertNoGpuErrors();
  assertClose("crossEntropy mean of 1500 rows", gotm, crossEntropyRef(xm, many, -100, "mean").data);
  lm.dispose();
  tm.dispose();
  const ids = [2, -100, 7];
  const tt = tensor(new Int32Array(ids), [3]);
  for (const V of [8, 9]) {
    await checkOp({
      name: `crossEntropy [3, ${V}]`,
      inputs: [randArr(rng, [3, V], 2)],
      gpu: ([l]) => ops.crossEntropy(l, tt),
      ref: ([l]) => crossEntropyRef(l, ids, -100, "mean"),
    });
  }
  tt.dispose();
});
