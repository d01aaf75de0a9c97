// qkvNormRope (kernels/ops_qkv_heads.wgsl): the joined q/k/v projection's output split into heads
// with QK-norm and RoPE in one dispatch each way. The forward and the gradients of the joined
// input and both norm weights against a float64 reference (split, then rmsNormRopeRef or ropeRef)
// and its central finite differences; then against the composed GPU ops (splitLast, rmsNormRope /
// rope) on larger shapes, with the norm weights as separate leaves, as packed AdamW parameters
// (their gradients one arena: one column sum for both) and as computed tensors; with and without
// the norms, one of them alone, missing dq / dk / dv, T = 1, B = 1, Hq = Hkv, G = 2, offsets; the
// dispatches by kernel; bad input.
import assert from "node:assert/strict";
import { type Arr, arr, finiteDiff, rmsNormRopeRef, ropeRef } from "../src/autograd/reference.ts";
import { AdamW, ops, setDeferredGradSums } from "../src/autograd/mod.ts";
import { ComputeBatch, type Dispatch } from "../src/gpu/mod.ts";
import { full, readAll, type Tensor, tensor, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import {
  assertClose,
  assertNoGpuErrors,
  assertSame,
  randArr,
  setup,
  up,
  upPacked,
} from "./autograd_util.ts";

await setup();
const rng = new Rng(23);

/** Shapes and options of one case. */
interface Case {
  B: number;
  T: number;
  Hq: number;
  Hkv: number;
  D: number;
  offset: number;
  base: number;
  eps: number;
  /** Which norm weights the block has. */
  norms: "both" | "none" | "q" | "k";
  /** Which of q, k, v the loss reads (the others get no gradient). */
  uses: [boolean, boolean, boolean];
}

function describe(c: Case): string {
  const used = ["q", "k", "v"].filter((_, i) => c.uses[i]).join("");
  return `B${c.B} T${c.T} Hq${c.Hq} Hkv${c.Hkv} D${c.D} offset ${c.offset} norms ${c.norms} uses ${used}`;
}

// The float64 reference: q, k, v of `x` [B, T, (Hq + 2Hkv)·D], flattened one after another.
function qkvRef(x: Arr, qn: Arr | null, kn: Arr | null, c: Case): Arr {
  const { B, T, Hq, Hkv, D } = c;
  const H = Hq + 2 * Hkv;
  const piece = (from: number, heads: number): Arr => {
    const out = new Float64Array(B * T * heads * D);
    for (let tok = 0; tok < B * T; tok++) {
      for (let i = 0; i < heads * D; i++) out[tok * heads * D + i] = x.data[tok * H * D + from + i];
    }
    return arr(out, [B, T, heads, D]);
  };
  const normRope = (a: Arr, w: Arr | null) =>
    w
      ? rmsNormRopeRef(a, w, c.eps, "bthd", c.offset, c.base)
      : ropeRef(a, "bthd", c.offset, c.base);
  const q = normRope(piece(0, Hq), qn);
  const k = normRope(piece(Hq * D, Hkv), kn);
  const v = piece((Hq + Hkv) * D, Hkv);
  return arr([...q.data, ...k.data, ...v.data], [q.data.length + k.data.length + v.data.length]);
}

// Inputs of a case: x, and the weights it has.
function inputsOf(c: Case): { x: Arr; qn: Arr | null; kn: Arr | null } {
  const x = randArr(rng, [c.B, c.T, (c.Hq + 2 * c.Hkv) * c.D], 1.5, 0.2);
  const qn = c.norms === "both" || c.norms === "q" ? randArr(rng, [c.D], 0.5, 1) : null;
  const kn = c.norms === "both" || c.norms === "k" ? randArr(rng, [c.D], 0.5, 1) : null;
  return { x, qn, kn };
}

// Upstream gradients of q, k, v (zero where the loss does not read the output).
function upstream(c: Case): Arr[] {
  const sizes = [c.Hq, c.Hkv, c.Hkv].map((h) => c.B * c.T * h * c.D);
  return sizes.map((n, i) =>
    c.uses[i]
      ? randArr(rng, [c.B, c.T, [c.Hq, c.Hkv, c.Hkv][i], c.D])
      : arr(new Float64Array(n), [n])
  );
}

// q, k, v of a run, one after another.
function cat(got: ArrayLike<number>[]): number[] {
  return [0, 1, 2].flatMap((i) => Array.from(got[i]));
}

type Weights = "leaf" | "packed" | "computed";
type Heads = (
  x: Tensor,
  qn: Tensor | null,
  kn: Tensor | null,
) => { q: Tensor; k: Tensor; v: Tensor };

// Runs `heads` and the backward of Σ q·gq + Σ k·gk + Σ v·gv over the outputs the case uses;
// returns q, k, v and the gradients of x and of the weights it has, read back.
async function run(
  heads: Heads,
  c: Case,
  x: Arr,
  qn: Arr | null,
  kn: Arr | null,
  gs: Arr[],
  weights: Weights,
): Promise<ArrayLike<number>[]> {
  const xt = up(x, true);
  const ws = [qn, kn].filter((w): w is Arr => w !== null);
  const wts = weights === "packed" ? upPacked(ws) : ws.map((w) => up(w, true));
  // packed: AdamW gives their gradients views of one gradient arena, as a Transformer's
  const opt = weights === "packed" ? new AdamW(wts, { lr: 0 }) : null;
  const [qt, kt] = qn ? [wts[0], kn ? wts[1] : null] : [null, kn ? wts[0] : null];
  const outs = tidy(() => {
    const used = (w: Tensor | null) =>
      w && (weights === "computed" ? ops.sub(ops.mul(w, 2), w) : w);
    const o = heads(xt, used(qt), used(kt));
    const list = [o.q, o.k, o.v];
    const terms = list.flatMap((t, i) => c.uses[i] ? [ops.sum(ops.mul(t, up(gs[i])))] : []);
    terms.reduce((a, b) => ops.add(a, b)).backward();
    return list;
  });
  // a weight whose section got no gradient may have none (zero)
  const grads = [xt, ...wts].map((t) => t.grad);
  const read = await readAll([...outs, ...grads.filter((g): g is Tensor => g !== null)]);
  assertNoGpuErrors();
  const got = [...read.slice(0, 3)];
  let at = 3;
  for (const [i, g] of grads.entries()) {
    got.push(g ? read[at++] : new Float32Array(i === 0 ? x.data.length : c.D));
  }
  for (const t of [...outs, xt, ...wts]) t.dispose();
  opt?.dispose();
  return got;
}

const fused: (c: Case) => Heads = (c) => (x, qn, kn) =>
  ops.qkvNormRope(x, qn, kn, {
    heads: c.Hq,
    kvHeads: c.Hkv,
    headDim: c.D,
    eps: c.eps,
    offset: c.offset,
    base: c.base,
  });

const composed: (c: Case) => Heads = (c) => (x, qn, kn) => {
  const { B, T, Hq, Hkv, D } = c;
  const [qf, kf, vf] = ops.splitLast(x, [Hq * D, Hkv * D, Hkv * D]);
  const r = { offset: c.offset, base: c.base };
  const q = ops.reshape(qf, [B, T, Hq, D]), k = ops.reshape(kf, [B, T, Hkv, D]);
  return {
    q: qn ? ops.rmsNormRope(q, qn, { eps: c.eps, ...r }) : ops.rope(q, r),
    k: kn ? ops.rmsNormRope(k, kn, { eps: c.eps, ...r }) : ops.rope(k, r),
    v: ops.reshape(vf, [B, T, Hkv, D]),
  };
};

const base: Case = {
  B: 2,
  T: 3,
  Hq: 2,
  Hkv: 1,
  D: 8,
  offset: 0,
  base: 10000,
  eps: 1e-6,
  norms: "both",
  uses: [true, true, true],
};

Deno.test("qkvNormRope matches the float64 reference and its finite differences", async () => {
  const cases: Case[] = [
    base,
    { ...base, B: 1, T: 1, Hq: 1, Hkv: 1, D: 32, offset: 7, base: 1e6 }, // T = 1, B = 1, Hq = Hkv
    { ...base, B: 1, T: 4, Hq: 4, Hkv: 2, D: 8, offset: 3 }, // G = 2
    { ...base, T: 2, Hq: 2, Hkv: 2, D: 6, norms: "none", offset: 5 }, // RoPE only, 3 pairs
    { ...base, T: 2, Hq: 2, Hkv: 1, D: 64, offset: 1, eps: 1e-5 }, // 32 lanes
    { ...base, norms: "q", uses: [true, true, false] }, // one norm; no dv
    { ...base, norms: "k", uses: [false, true, true], offset: 2 }, // the other; no dq
    { ...base, uses: [true, false, true] }, // no dk: kNorm's gradient is zero
    { ...base, B: 1, T: 2, D: 2, uses: [false, false, true] }, // D = 2; only dv
  ];
  for (const c of cases) {
    const { x, qn, kn } = inputsOf(c);
    const gs = upstream(c);
    const got = await run(fused(c), c, x, qn, kn, gs, "leaf");
    const want = qkvRef(x, qn, kn, c);
    const name = describe(c);
    assertClose(`${name} forward`, cat(got), want.data, 1e-5, 1e-4);
    const w = Float64Array.from([...gs[0].data, ...gs[1].data, ...gs[2].data]);
    const ins = [x, qn, kn].filter((a): a is Arr => a !== null);
    const f = (as: Arr[]) => {
      const [xa, ...wa] = as;
      return qkvRef(xa, qn ? wa[0] : null, kn ? wa[qn ? 1 : 0] : null, c);
    };
    ins.forEach((_, i) => {
      const fd = finiteDiff(f, ins.map((a) => arr(a.data, a.shape)), i, w);
      assertClose(
        `${name} gradient of input ${i} vs finite differences`,
        got[3 + i],
        fd,
        1e-4,
        1e-3,
      );
    });
  }
});

Deno.test("qkvNormRope matches splitLast + rmsNormRope on the GPU: leaf, packed and computed weights", async () => {
  // [case]: 1,024 rows of dk in several backward blocks with a partial one; D = 128 (64 lanes);
  // D = 16 (8 lanes, 32 rows a workgroup); RoPE only; missing gradients
  const cases: Case[] = [
    { ...base, B: 2, T: 64, Hq: 8, Hkv: 4, D: 16, offset: 3 },
    { ...base, B: 1, T: 33, Hq: 4, Hkv: 2, D: 128, offset: 0, base: 1e6 },
    { ...base, B: 3, T: 5, Hq: 2, Hkv: 2, D: 32, offset: 11 },
    { ...base, B: 2, T: 9, Hq: 4, Hkv: 2, D: 32, norms: "none" },
    { ...base, B: 2, T: 9, Hq: 4, Hkv: 2, D: 64, uses: [true, false, true] },
    { ...base, B: 2, T: 9, Hq: 4, Hkv: 2, D: 16, norms: "k", uses: [false, true, false] },
  ];
  for (const c of cases) {
    for (const weights of ["leaf", "packed", "computed"] as const) {
      if (c.norms === "none" && weights !== "leaf") continue;
      const { x, qn, kn } = inputsOf(c);
      const gs = upstream(c);
      const a = await run(fused(c), c, x, qn, kn, gs, weights);
      const b = await run(composed(c), c, x, qn, kn, gs, weights);
      const name = `${describe(c)} weights ${weights}`;
      ["q", "k", "v"].forEach((what, i) => {
        // the same expressions, term for term, as rmsNormRope's and rope's kernels (equal bit
        // for bit on llvmpipe; a compiler may contract a product and a sum differently)
        assertSame(`${name} ${what}`, a[i], b[i], 1e-6);
      });
      assertClose(`${name} d(joined)`, a[3], b[3], 1e-5, 1e-4);
      for (let i = 4; i < a.length; i++) {
        assertClose(`${name} d(norm weight ${i - 4})`, a[i], b[i], 1e-4, 1e-4);
      }
      // and the forward against float64 (the composed ops could share a mistake)
      const want = qkvRef(x, qn, kn, c);
      const tol = 1e-5 + 5e-7 * (c.offset + c.T);
      assertClose(`${name} vs float64`, cat(a), want.data, tol, 1e-4);
    }
  }
});

Deno.test("qkvNormRope backward: several row groups per block (D = 8 in 4 lanes, 16,800 q rows)", async () => {
  // q: 132 blocks of two 64-row steps, the last partial; k: 132 blocks of one step
  const c: Case = { ...base, B: 1, T: 4200, Hq: 4, Hkv: 2, D: 8, offset: 0 };
  const { x, qn, kn } = inputsOf(c);
  const gs = upstream(c);
  const a = await run(fused(c), c, x, qn, kn, gs, "packed");
  const b = await run(composed(c), c, x, qn, kn, gs, "packed");
  ["q", "k", "v"].forEach((what, i) => assertClose(what, a[i], b[i], 1e-7, 1e-6));
  assertClose("d(joined)", a[3], b[3], 1e-5, 1e-4);
  // the weights' gradients sum 16,800 and 8,400 rows in different orders
  assertClose("d(qNorm)", a[4], b[4], 1e-3, 1e-4);
  assertClose("d(kNorm)", a[5], b[5], 1e-3, 1e-4);
});

Deno.test("qkvNormRope: heads past the kernel's longest row run the composed ops", async () => {
  const c: Case = { ...base, B: 1, T: 2, Hq: 1, Hkv: 1, D: 2050, offset: 1 };
  const { x, qn, kn } = inputsOf(c);
  const gs = upstream(c);
  const a = await run(fused(c), c, x, qn, kn, gs, "leaf");
  const want = qkvRef(x, qn, kn, c);
  assertClose("forward vs float64", cat(a), want.data, 1e-5, 1e-4);
  const b = await run(composed(c), c, x, qn, kn, gs, "leaf");
  for (let i = 3; i < a.length; i++) assertClose(`gradient ${i - 3}`, a[i], b[i], 1e-7, 1e-6);
});

// The kernels `fn` dispatches, by `kernel:entryPoint`.
function dispatched(fn: () => void): string[] {
  const names: string[] = [];
  const inner = ComputeBatch.prototype.dispatch;
  ComputeBatch.prototype.dispatch = function (this: ComputeBatch, d: Dispatch) {
    names.push(`${d.kernel.name}:${d.entryPoint ?? "main"}`);
    return inner.call(this, d);
  };
  try {
    fn();
  } finally {
    ComputeBatch.prototype.dispatch = inner;
  }
  return names.sort();
}

Deno.test("qkvNormRope: one dispatch forward; backward one kernel and one column sum for packed weights", async () => {
  const c: Case = { ...base, B: 2, T: 5, Hq: 4, Hkv: 2, D: 16, offset: 2 };
  // deferred: the column sums join the backward's one deferred dispatch (grad_sums.ts), which
  // reads the partials from its own arena; not deferred, from pool buffers pre-filled with NaN
  for (
    const [weights, deferred] of [
      ["packed", false],
      ["leaf", false],
      ["packed", true],
      ["leaf", true],
    ] as const
  ) {
    setDeferredGradSums(deferred);
    const { x, qn, kn } = inputsOf(c);
    // joined is a matmul's output, as in a block (its gradient feeds the matmul's backward)
    const x0 = up(x),
      eye = up(arr(Array.from({ length: 4 }, (_, i) => (i % 3 === 0 ? 1 : 0)), [2, 2]));
    eye.requiresGrad = true;
    const [qt, kt] = weights === "packed" ? upPacked([qn!, kn!]) : [up(qn!, true), up(kn!, true)];
    const opt = weights === "packed" ? new AdamW([qt, kt], { lr: 0 }) : null;
    const H = (c.Hq + 2 * c.Hkv) * c.D;
    let fwd: string[] = [], bwd: string[] = [];
    for (let step = 0; step < 2; step++) { // the first creates the .grad tensors (fills)
      tidy(() => {
        const joined = ops.reshape(
          ops.matmul(ops.reshape(x0, [c.B * c.T * H / 2, 2]), eye),
          [c.B, c.T, H],
        );
        let o!: ReturnType<Heads>;
        fwd = dispatched(() => (o = fused(c)(joined, qt, kt)));
        const loss = ops.add(ops.add(ops.sum(o.q), ops.sum(o.k)), ops.sum(o.v));
        // NaN in the pool's buffers of the partials' size: columns the kernel does not write
        // would reach the gradient arena (2 blocks of qNorm's 16 columns, 48 of padding, kNorm's)
        for (const n of [2 * 80, 2 * 32]) full([n], NaN).dispose();
        const all = dispatched(() => loss.backward());
        bwd = all.filter((k) =>
          k.startsWith("ops_qkv") || k.startsWith("ops_reduce:colsum") || k.startsWith("grad_sums")
        );
      });
    }
    setDeferredGradSums(true);
    const g = qt.grad!;
    const span = kt.grad!.offset + c.D - g.offset; // qNorm's gradient to kNorm's, padding between
    const [both] = await readAll([g.viewAs([span], [1], g.offset, "check")]);
    assertNoGpuErrors();
    assert.ok(both.every(Number.isFinite), `gradients and the padding between: ${both}`);
    if (weights === "packed") {
      assert.equal(span, 80, "the arena's layout this test expects");
      assert.ok(both.slice(c.D, span - c.D).every((v) => v === 0), "the padding stays zero");
    }
    assert.deepEqual(fwd, ["ops_qkv_heads:fwd"]);
    const colsums = weights === "packed" ? 1 : 2; // separate leaves: one into each .grad
    assert.equal(bwd.filter((k) => k === "ops_qkv_heads:bwd").length, 1, bwd.join(" "));
    // deferral takes the packed weights' one span; separate leaves' partials share one buffer the
    // kernel writes, which the deferred arena does not hold, so they keep their column sums
    const inArena = deferred && weights === "packed";
    assert.equal(
      bwd.filter((k) => k.startsWith(inArena ? "grad_sums" : "ops_reduce:colsum")).length,
      colsums,
      bwd.join(" "),
    );
    if (inArena) assert.ok(!bwd.some((k) => k.startsWith("ops_reduce")), bwd.join(" "));
    for (const t of [x0, eye, qt, kt]) t.dispose();
    opt?.dispose();
  }
});

Deno.test("qkvNormRope: bad shapes and options are errors naming the op and the problem", () => {
  const x = tensor(new Float32Array(2 * 3 * 32), [2, 3, 32]);
  const w8 = tensor(new Float32Array(8), [8]), w4 = tensor(new Float32Array(4), [4]);
  const o = { heads: 2, kvHeads: 1, headDim: 8 };
  assert.throws(
    () => ops.qkvNormRope(x, w8, w8, { ...o, heads: 3 }),
    /qkvNormRope: needs joined of .* = \[\.\.\., T, 40\], got \[2, ?3, ?32\]/,
  );
  assert.throws(() => ops.qkvNormRope(x, w4, w8, o), /qkvNormRope: qNorm must be \[8\], got \[4\]/);
  assert.throws(() => ops.qkvNormRope(x, w8, w4, o), /qkvNormRope: kNorm must be \[8\], got \[4\]/);
  assert.throws(
    () => ops.qkvNormRope(x, null, null, { heads: 2, kvHeads: 3, headDim: 2 }),
    /qkvNormRope: needs joined/,
  );
  const x5 = tensor(new Float32Array(20), [1, 20]);
  assert.throws(
    () => ops.qkvNormRope(x5, null, null, { heads: 2, kvHeads: 1, headDim: 5 }),
    /qkvNormRope: head size 5 must be even/,
  );
  assert.throws(
    () => ops.qkvNormRope(x, w8, w8, { ...o, kvHeads: 0 }),
    /kvHeads 0 must be a positive/,
  );
  assert.throws(() => ops.qkvNormRope(x, w8, w8, { ...o, eps: NaN }), /qkvNormRope: eps NaN/);
  assert.throws(() => ops.qkvNormRope(x, w8, w8, { ...o, offset: -1 }), /offset -1 must be/);
  assert.throws(() => ops.qkvNormRope(x, w8, w8, { ...o, base: 0 }), /base 0 must be/);
  const xi = tensor(new Int32Array(2 * 3 * 32), [2, 3, 32], "i32");
  assert.throws(() => ops.qkvNormRope(xi, w8, w8, o), /qkvNormRope/);
  for (const t of [x, w8, w4, x5, xi]) t.dispose();
});
