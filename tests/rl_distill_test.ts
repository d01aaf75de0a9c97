// The distillation KL (src/rl/distill.ts) against its float64 reference (src/rl/distill_reference.ts):
// loss, per-row KL, entropies, counts and the student gradient, on the vec4 kernels (V % 4 == 0;
// one register tile, K = 2, two tiles) and the scalar-load kernels (odd V), with peaked, flat,
// tied rows, -inf entries in either model (finite and infinite KLs), temperatures, both directions,
// masks (f32 and u32, with no kept row); the gradient against central finite differences of the
// reference; a run with the logits over a lowered binding limit equal to the unsplit run.
import assert from "node:assert/strict";
import { ops } from "../src/autograd/mod.ts";
import { arr } from "../src/autograd/reference.ts";
import { backward } from "../src/autograd/tape.ts";
import { readAll, runtime, type Tensor, tensor, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { decodeDistillStats, distillKL, klRows } from "../src/rl/distill.ts";
import { distillKLRef, type KLDirection } from "../src/rl/distill_reference.ts";
import {
  assertClose,
  assertNoGpuErrors,
  assertSame,
  atBindingLimit,
  checkOp,
  closeness,
  setup,
  up,
} from "./autograd_util.ts";

type Kind = "random" | "flat" | "peaked" | "ties" | "holes" | "wide";

// One row of V logits of a kind; `holes` puts -inf at every entry where `hole(j)` holds.
function fillRow(rng: Rng, out: Float32Array, base: number, V: number, kind: Kind, hole: number) {
  for (let j = 0; j < V; j++) {
    let v = rng.normal() * 2;
    if (kind === "flat") v = 0.5;
    if (kind === "peaked") v = j === (hole % V) ? -150 : -200 + rng.normal();
    if (kind === "ties") v = Math.round(v);
    if (kind === "wide") v = rng.normal() * 12;
    if (kind === "holes" && (j + hole) % 3 === 0 && j !== hole % V) v = -Infinity;
    out[base + j] = v;
  }
}

const KINDS: Kind[] = ["random", "flat", "peaked", "ties", "holes", "wide"];

// Student and teacher logits: the teacher a perturbation of the student (small KLs) or independent
// (large ones), each row of its own kind; `holes` rows put -inf at different entries in each, so
// both finite (-inf shared or where the averaging model has no mass) and infinite KLs occur.
function pair(rng: Rng, N: number, V: number): [Float32Array, Float32Array] {
  const s = new Float32Array(N * V), t = new Float32Array(N * V);
  for (let r = 0; r < N; r++) {
    const kind = KINDS[rng.int(KINDS.length)];
    fillRow(rng, s, r * V, V, kind, r);
    if (rng.uniform() < 0.5) {
      for (let j = 0; j < V; j++) t[r * V + j] = Math.fround(s[r * V + j] + 0.3 * rng.normal());
    } else {
      fillRow(rng, t, r * V, V, kind, rng.uniform() < 0.5 ? r : r + 1);
    }
  }
  return [s, t];
}

interface Got {
  loss: number;
  rowKl: Float32Array;
  stats: Float32Array;
  rowStats: Float32Array;
  grad: Float32Array;
}

async function runGpu(
  s: Float32Array,
  t: Float32Array,
  N: number,
  V: number,
  opts: { direction?: KLDirection; temperature?: number; mask?: number[]; maskU32?: boolean },
): Promise<Got> {
  const st = tensor(s, [N, V]);
  st.requiresGrad = true;
  const tt = tensor(t, [N, V]);
  tt.requiresGrad = true; // the teacher must get no gradient even so
  const mask = opts.mask
    ? (opts.maskU32 ? tensor(Uint32Array.from(opts.mask)) : tensor(opts.mask))
    : undefined;
  const o = { direction: opts.direction, temperature: opts.temperature, mask };
  const outs = tidy(() => {
    const r = distillKL(st, tt, o);
    backward(r.loss);
    const rows = klRows(st, tt, o);
    return [r.loss, r.rowKl, r.stats, rows.rowStats];
  });
  assert.equal(tt.grad, null, "the teacher got a gradient");
  const got = await readAll([...outs, st.grad!]);
  for (const x of [...outs, st, tt, mask]) x?.dispose();
  assertNoGpuErrors();
  const [loss, rowKl, stats, rowStats, grad] = got as Float32Array[];
  return { loss: loss[0], rowKl, stats, rowStats, grad };
}

const SHAPES: [number, number][] = [
  [1, 1],
  [3, 2],
  [2, 5],
  [5, 8],
  [4, 13],
  [3, 257],
  [2, 1028], // K = 2
  [2, 4100], // two tiles of vec4
  [2, 4099], // two tiles, scalar loads
];

Deno.test("distillKL: loss, rows, entropies, counts and gradient match float64 (many seeds)", async () => {
  await setup();
  const worst = { kl: 0, grad: 0, ent: 0 };
  let seed = 0, infSeen = 0;
  for (const [N, V] of SHAPES) {
    for (const direction of ["forward", "reverse"] as KLDirection[]) {
      for (const temperature of [1, 0.7, 2.5]) {
        const rng = new Rng(1000 + seed++);
        const [s, t] = pair(rng, N, V);
        const maskKind = rng.int(4); // none, some dropped (f32), some dropped (u32), all dropped
        const mask = maskKind === 0
          ? undefined
          : Array.from({ length: N }, (_, i) => (maskKind === 3 ? 0 : (i % 3 === 1 ? 0 : 1)));
        const opts = { direction, temperature, mask, maskU32: maskKind === 2 };
        const got = await runGpu(s, t, N, V, opts);
        const ref = distillKLRef(s, t, N, V, { direction, temperature, mask });
        const what = `[${N}, ${V}] ${direction} T=${temperature} mask=${maskKind}`;
        const st = decodeDistillStats(got.stats);
        assert.equal(st.keptRows, ref.kept, `${what}: kept rows`);
        assert.equal(st.infRows, ref.infRows, `${what}: inf rows`);
        assert.equal(st.nanRows, 0, `${what}: nan rows`);
        infSeen += ref.infRows;
        assertClose(`${what} per-row KL`, got.rowKl, ref.rowKl, 2e-5, 2e-4);
        assertClose(`${what} loss`, [got.loss, st.loss], [ref.loss, ref.loss], 2e-5, 2e-4);
        const col = (k: number) => Array.from({ length: N }, (_, r) => got.rowStats[8 * r + k]);
        assertClose(`${what} forward KL`, col(4), ref.forwardKl, 2e-5, 2e-4);
        assertClose(`${what} reverse KL`, col(5), ref.reverseKl, 2e-5, 2e-4);
        assertClose(`${what} H(student)`, col(6), ref.entropyStudent, 2e-5, 2e-4);
        assertClose(`${what} H(teacher)`, col(7), ref.entropyTeacher, 2e-5, 2e-4);
        assertClose(`${what} gradient`, got.grad, ref.grad, 5e-6, 1e-3);
        worst.kl = Math.max(worst.kl, closeness(got.rowKl, ref.rowKl, 2e-5, 2e-4));
        worst.ent = Math.max(worst.ent, closeness(col(6), ref.entropyStudent, 2e-5, 2e-4));
        worst.grad = Math.max(worst.grad, closeness(got.grad, ref.grad, 5e-6, 1e-3));
      }
    }
  }
  assert.ok(infSeen > 0, "no case had an infinite KL: the -inf cases are not exercised");
  console.log(
    `distillKL vs float64, worst error as a fraction of the tolerance: KL ${worst.kl.toFixed(3)} ` +
      `(atol 2e-5, rtol 2e-4), entropy ${worst.ent.toFixed(3)}, gradient ${
        worst.grad.toFixed(3)
      } (atol 5e-6, rtol 1e-3); ${infSeen} rows with +inf KL`,
  );
});

Deno.test("distillKL: gradient vs central finite differences of the reference and of the GPU", async () => {
  await setup();
  let seed = 7;
  for (const [N, V] of [[3, 7], [2, 8], [1, 1]]) {
    for (const direction of ["forward", "reverse"] as KLDirection[]) {
      for (const temperature of [1, 1.7]) {
        const rng = new Rng(seed++);
        const s = arr(Array.from({ length: N * V }, () => Math.fround(2 * rng.normal())), [N, V]);
        const t = arr(Array.from({ length: N * V }, () => Math.fround(2 * rng.normal())), [N, V]);
        const mask = N > 1 ? Array.from({ length: N }, (_, i) => (i === 1 ? 0 : 1)) : undefined;
        const maskT = mask ? tensor(mask) : undefined;
        await checkOp({
          name: `distillKL [${N}, ${V}] ${direction} T=${temperature}`,
          inputs: [s, t],
          grads: [0],
          gpu: ([a, b]) => distillKL(a, b, { direction, temperature, mask: maskT }).loss,
          ref: ([a, b]) =>
            arr([distillKLRef(a.data, b.data, N, V, { direction, temperature, mask }).loss], []),
          fwd: [1e-5, 1e-4],
          bwd: [1e-5, 1e-3],
          seed,
        });
        // the closed-form float64 gradient against the same finite differences
        const ref = distillKLRef(s.data, t.data, N, V, { direction, temperature, mask });
        const h = 1e-6;
        for (let i = 0; i < N * V; i++) {
          const x = s.data.slice();
          x[i] += h;
          const up1 = distillKLRef(x, t.data, N, V, { direction, temperature, mask }).loss;
          x[i] -= 2 * h;
          const dn = distillKLRef(x, t.data, N, V, { direction, temperature, mask }).loss;
          const fd = (up1 - dn) / (2 * h);
          assert.ok(Math.abs(fd - ref.grad[i]) < 1e-7 + 1e-5 * Math.abs(fd), `ref grad [${i}]`);
        }
        maskT?.dispose();
      }
    }
  }
});

Deno.test("distillKL: NaN and all -inf rows are counted, stay in their rows, never hide", async () => {
  await setup();
  const N = 4, V = 6;
  const rng = new Rng(3);
  const [s, t] = pair(rng, N, V);
  s[1 * V + 2] = NaN; // row 1: a NaN student logit
  t.fill(-Infinity, 2 * V, 3 * V); // row 2: the teacher is all -inf
  for (const direction of ["forward", "reverse"] as KLDirection[]) {
    const got = await runGpu(s, t, N, V, { direction });
    const ref = distillKLRef(s, t, N, V, { direction });
    const st = decodeDistillStats(got.stats);
    assert.equal(st.nanRows, 2);
    assert.equal(ref.nanRows, 2);
    assert.ok(Number.isNaN(got.loss) && Number.isNaN(st.loss), "the mean includes the NaN rows");
    assertSame("per-row KL", got.rowKl, ref.rowKl.map(Math.fround), 2e-4);
    assertClose("gradient (NaN on invalid rows only)", got.grad, ref.grad, 1e-6, 1e-3);
  }
  // with the bad rows masked out, everything is finite again
  const mask = [1, 0, 0, 1];
  const got = await runGpu(s, t, N, V, { mask });
  const ref = distillKLRef(s, t, N, V, { mask });
  assert.equal(decodeDistillStats(got.stats).nanRows, 0);
  assertClose("masked loss", [got.loss], [ref.loss], 1e-5, 1e-4);
  assert.ok(got.grad.every(Number.isFinite));
});

Deno.test("distillKL: logits over several storage bindings equal one binding", async () => {
  const rt = await setup();
  for (const V of [512, 700]) {
    const N = 13;
    const rng = new Rng(V);
    const [s, t] = pair(rng, N, V);
    const mask = Array.from({ length: N }, (_, i) => (i % 5 === 3 ? 0 : 1));
    const run = () => runGpu(s, t, N, V, { direction: V === 700 ? "reverse" : "forward", mask });
    const [one, d1] = await atBindingLimit(null, run);
    // blocks of a few rows: the smallest limit that holds one aligned step of rows, times 2
    const align = rt.storageOffsetAlignment;
    const step = align / 4 / gcd(V, align / 4);
    const limit = Math.ceil((2 * step * V * 4) / 16) * 16;
    const [split, d2] = await atBindingLimit(limit, run);
    assert.ok(d2 > d1, `the split run recorded ${d2} dispatches, the unsplit ${d1}`);
    for (const k of ["rowKl", "stats", "rowStats", "grad"] as const) {
      assertSame(`V=${V} ${k} split vs one binding`, split[k], one[k], 0);
    }
    const ref = distillKLRef(s, t, N, V, { direction: V === 700 ? "reverse" : "forward", mask });
    assertClose(`V=${V} split gradient vs float64`, split.grad, ref.grad, 1e-6, 1e-3);
  }
  assert.equal(runtime().storageBindingLimit, runtime().deviceBindingLimit);
});

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

Deno.test("distillKL: bad input is refused with a message naming it", async () => {
  await setup();
  const a = up(arr([0, 1, 2, 3, 4, 5], [2, 3]));
  const b = up(arr([0, 1, 2, 3], [2, 2]));
  const m = tensor([1, 0, 1]);
  const cases: [() => unknown, RegExp][] = [
    [() => distillKL(a, b), /same shape/],
    [() => distillKL(a, a, { temperature: 0 }), /temperature 0/],
    [() => distillKL(a, a, { temperature: NaN }), /temperature NaN/],
    [() => distillKL(a, a, { direction: "both" as KLDirection }), /direction "both"/],
    [() => distillKL(a, a, { mask: m }), /mask .* needs 2 values/],
    [() => distillKL(tensor(new Int32Array([1, 2])), a), /expected a f32/],
  ];
  for (const [f, re] of cases) assert.throws(f, re);
  for (const t of [a, b, m] as Tensor[]) t.dispose();
});

Deno.test("distillKL: strided (transposed) logits give the contiguous result", async () => {
  await setup();
  const N = 3, V = 10;
  const [s, t] = pair(new Rng(11), N, V);
  const tr = (x: Float32Array) =>
    Float32Array.from({ length: N * V }, (_, i) => x[(i % N) * V + Math.floor(i / N)]);
  const want = await runGpu(s, t, N, V, { direction: "reverse" });
  const sT = tensor(tr(s), [V, N]), tT = tensor(tr(t), [V, N]);
  const a = ops.transpose(sT, 0, 1);
  a.requiresGrad = true;
  const outs = tidy(() => {
    const r = distillKL(a, ops.transpose(tT, 0, 1), { direction: "reverse" });
    backward(r.loss);
    return [r.rowKl, r.stats];
  });
  const [rowKl, stats, grad] = await readAll([...outs, a.grad!]);
  for (const x of [...outs, a, sT, tT]) x.dispose();
  assertSame("rowKl", rowKl, want.rowKl, 0);
  assertSame("stats", stats, want.stats, 0);
  assertSame("grad", grad, want.grad, 0);
});
