// Version 1 of the fused causal attention kernel (kernels/attention_fused.wgsl) against the float64 reference:
// forward over many shapes and seeds (Tq = Tk and Tq < Tk, T = 1, odd sizes, GQA, peaked and flat
// rows, at 16 KiB of workgroup memory and at the device's limit), backward against central finite
// differences of the reference (small shapes) and against a float64 analytic backward and the
// composed GPU op (bigger shapes); then the transformer's loss and gradients with fused vs composed.
import assert from "node:assert/strict";
import {
  attentionImpl,
  backward,
  isGradEnabled,
  noGrad,
  ops,
  setAttentionImpl,
} from "../src/autograd/mod.ts";
import {
  deviceAttentionTiles,
  deviceFlashTiles,
  fusedAttentionTiles,
  setFusedAttentionVersion,
} from "../src/autograd/attention_fused.ts";
import { AUTO_FUSED_MAX_WORK } from "../src/autograd/attention.ts";
import { type Arr, attentionRef, finiteDiff } from "../src/autograd/reference.ts";
import { readAll, runtime, type Tensor, tensor, tidy, zeros } from "../src/tensor/mod.ts";
import { ComputeBatch } from "../src/gpu/mod.ts";
import { Rng } from "../src/util/rng.ts";
import {
  attentionBackwardRef,
  type Case,
  inputs,
  label,
  transformerFusedVsComposed,
} from "./autograd_attention_util.ts";
import {
  assertClose,
  assertNoGpuErrors,
  checkOp,
  closeness,
  randArr,
  setup,
  up,
} from "./autograd_util.ts";

const SMALL_WG = 16384;

// Forward over many shapes: every case's output in one readback.
async function checkForward(cases: Case[], seed: number, workgroupBytes?: number) {
  const rng = new Rng(seed);
  const ins = cases.map((c) => inputs(rng, c));
  const outs = tidy(() =>
    ins.map(([q, k, v]) =>
      ops.fusedCausalAttention(up(q), up(k), up(v), { workgroupBytes, version: 1 })
    )
  );
  const got = await readAll(outs);
  outs.forEach((o) => o.dispose());
  assertNoGpuErrors();
  let worst = 0;
  cases.forEach((c, i) => {
    const want = attentionRef(...ins[i]).data;
    worst = Math.max(worst, closeness(got[i], want, 1e-6, 1e-5));
    // peaked rows: a score's f32 rounding (~|s|·1e-7) moves its exp by as much, relatively
    const [atol, rtol] = c.qScale && c.qScale > 1 ? [1e-5, 1e-4] : [2e-6, 2e-5];
    assertClose(`forward ${label(c)} (wg ${workgroupBytes ?? "device"})`, got[i], want, atol, rtol);
  });
  return worst;
}

function forwardCases(rng: Rng, n: number): Case[] {
  const Ts = [1, 2, 7, 16, 33, 64];
  const Ds = [8, 32, 64, 128];
  const Gs = [1, 2, 4];
  return Array.from({ length: n }, () => {
    const Tq = Ts[rng.int(Ts.length)];
    const Tk = rng.uniform() < 0.5 ? Tq : Tq + 1 + rng.int(9);
    const G = Gs[rng.int(Gs.length)];
    const Hkv = 1 + rng.int(2);
    const r = rng.uniform();
    return {
      B: 1 + rng.int(3),
      Tq,
      Tk,
      Hq: G * Hkv,
      Hkv,
      D: Ds[rng.int(Ds.length)],
      qScale: r < 0.15 ? 30 : r < 0.25 ? 0 : undefined,
    };
  });
}

Deno.test("fused attention forward matches the float64 reference over random shapes", async () => {
  await setup();
  const worst: number[] = [];
  for (const seed of [1, 2, 3]) {
    const rng = new Rng(100 + seed);
    const cases = forwardCases(rng, 12);
    worst.push(await checkForward(cases, seed, SMALL_WG));
    worst.push(await checkForward(forwardCases(rng, 12), seed + 10));
  }
  // the edges, at both memory budgets: T = 1, one key past one query, odd D and T, wide GQA
  const edges: Case[] = [
    { B: 1, Tq: 1, Tk: 1, Hq: 1, Hkv: 1, D: 8 },
    { B: 2, Tq: 1, Tk: 9, Hq: 4, Hkv: 1, D: 32 },
    { B: 1, Tq: 2, Tk: 3, Hq: 2, Hkv: 2, D: 5 },
    { B: 3, Tq: 33, Tk: 33, Hq: 4, Hkv: 1, D: 17 },
    { B: 1, Tq: 17, Tk: 40, Hq: 2, Hkv: 1, D: 128 },
    { B: 1, Tq: 64, Tk: 64, Hq: 2, Hkv: 1, D: 100, qScale: 30 },
    { B: 2, Tq: 16, Tk: 16, Hq: 2, Hkv: 2, D: 64, qScale: 0 },
  ];
  worst.push(await checkForward(edges, 7, SMALL_WG));
  worst.push(await checkForward(edges, 8));
  console.log(
    `forward: worst |err| / (1e-6 + 1e-5·|want|) per batch of cases: ${
      worst.map((w) => w.toFixed(3)).join(" ")
    }`,
  );
});

Deno.test("fused attention tiles fit the budget and the register columns", () => {
  for (const budget of [16384, 32768]) {
    for (const D of [1, 5, 8, 32, 64, 100, 128]) {
      const t = fusedAttentionTiles(D, budget);
      assert.ok(t, `D=${D} at ${budget} bytes has tiles`);
      for (const tile of [t.forward, t.dq, t.dkv]) {
        assert.ok(tile.bq * tile.bk <= 256, `D=${D}: ${tile.bq}×${tile.bk} threads`);
      }
      assert.ok(Math.ceil(D / t.forward.bk) <= 16 && Math.ceil(D / t.dkv.bq) <= 16);
    }
  }
  // the anchors (D = 32, 64) get the largest tiles at 16 KiB in the forward
  assert.deepEqual(fusedAttentionTiles(32, 16384)?.forward, { bq: 16, bk: 16, pad: 1 });
  assert.deepEqual(fusedAttentionTiles(64, 16384)?.forward, { bq: 16, bk: 16, pad: 1 });
  assert.equal(fusedAttentionTiles(256, 16384), null, "D = 256 does not fit 16 KiB");
});

Deno.test("fused attention backward: finite differences of the float64 reference", async () => {
  await setup();
  const rng = new Rng(11);
  // the analytic float64 backward, first checked against finite differences itself
  const c0: Case = { B: 1, Tq: 3, Tk: 5, Hq: 4, Hkv: 2, D: 3 };
  const [q0, k0, v0] = inputs(rng, c0);
  const w0 = randArr(rng, q0.shape);
  const analytic = attentionBackwardRef(q0, k0, v0, w0);
  [0, 1, 2].forEach((which) => {
    const fd = finiteDiff((xs) => attentionRef(xs[0], xs[1], xs[2]), [q0, k0, v0], which, w0.data);
    assertClose(`float64 analytic backward, input ${which}`, analytic[which].data, fd, 1e-8, 1e-6);
  });
  const cases: Case[] = [
    { B: 2, Tq: 5, Tk: 5, Hq: 2, Hkv: 2, D: 4 },
    { B: 1, Tq: 4, Tk: 4, Hq: 4, Hkv: 1, D: 3 },
    { B: 1, Tq: 2, Tk: 6, Hq: 2, Hkv: 1, D: 5 },
    { B: 1, Tq: 1, Tk: 4, Hq: 4, Hkv: 2, D: 4 },
    { B: 1, Tq: 6, Tk: 6, Hq: 2, Hkv: 1, D: 4, qScale: 4 },
  ];
  for (const [i, c] of cases.entries()) {
    for (const workgroupBytes of [SMALL_WG, undefined]) {
      await checkOp({
        name: `fused attention ${label(c)}`,
        inputs: inputs(rng, c),
        gpu: ([q, k, v]) => ops.fusedCausalAttention(q, k, v, { workgroupBytes, version: 1 }),
        ref: ([q, k, v]) => attentionRef(q, k, v),
        fwd: [1e-5, 1e-4],
        gpuH: i === 0 ? 1e-2 : 0,
        seed: 20 + i,
      });
    }
  }
});

// Gradients of the fused op, the composed op and the float64 analytic backward for one case.
async function backwardErrors(rng: Rng, c: Case, workgroupBytes?: number, scale?: number) {
  const [q, k, v] = inputs(rng, c);
  const dO = randArr(rng, q.shape);
  const want = attentionBackwardRef(q, k, v, dO, scale);
  const grads = (impl: "fused" | "composed") => {
    const ts = [q, k, v].map((a) => up(a, true));
    tidy(() => {
      const o = impl === "fused"
        ? ops.fusedCausalAttention(ts[0], ts[1], ts[2], { workgroupBytes, scale, version: 1 })
        : ops.causalSelfAttention(ts[0], ts[1], ts[2], { impl, scale });
      backward(o, up(dO));
    });
    return ts;
  };
  const fused = grads("fused"), composed = grads("composed");
  const got = await readAll([...fused, ...composed].map((t) => t.grad!));
  [...fused, ...composed].forEach((t) => t.dispose());
  assertNoGpuErrors();
  const err = { vsRef: 0, composedVsRef: 0 };
  ["dq", "dk", "dv"].forEach((name, i) => {
    const what = `${name} ${label(c)} (wg ${workgroupBytes ?? "device"})`;
    // peaked rows: a score's f32 rounding (~|s|·1e-7) moves its probability by as much, relatively
    const loose = c.qScale !== undefined && c.qScale > 1 ? 3 : 1;
    assertClose(`fused ${what} vs float64`, got[i], want[i].data, 2e-5 * loose, 2e-4 * loose);
    assertClose(`fused vs composed ${what}`, got[i], got[i + 3], 3e-5 * loose, 3e-4 * loose);
    err.vsRef = Math.max(err.vsRef, closeness(got[i], want[i].data, 1e-6, 1e-5));
    err.composedVsRef = Math.max(
      err.composedVsRef,
      closeness(got[i + 3], want[i].data, 1e-6, 1e-5),
    );
  });
  return err;
}

Deno.test("fused attention backward matches float64 and the composed op on bigger shapes", async () => {
  await setup();
  const rng = new Rng(31);
  const cases: Case[] = [
    { B: 2, Tq: 33, Tk: 33, Hq: 4, Hkv: 2, D: 32 },
    { B: 1, Tq: 64, Tk: 64, Hq: 4, Hkv: 1, D: 64 },
    { B: 3, Tq: 7, Tk: 16, Hq: 2, Hkv: 2, D: 8 },
    { B: 1, Tq: 16, Tk: 40, Hq: 2, Hkv: 1, D: 128 },
    { B: 1, Tq: 1, Tk: 33, Hq: 4, Hkv: 2, D: 32 },
    { B: 2, Tq: 64, Tk: 64, Hq: 2, Hkv: 1, D: 20, qScale: 30 },
    { B: 1, Tq: 33, Tk: 33, Hq: 2, Hkv: 2, D: 64, qScale: 0 },
  ];
  for (const c of cases) {
    for (const wb of [SMALL_WG, undefined]) {
      const e = await backwardErrors(rng, c, wb);
      console.log(
        `backward ${label(c)} wg ${wb ?? "device"}: worst err/(1e-6+1e-5|want|) fused ${
          e.vsRef.toFixed(3)
        }, composed ${e.composedVsRef.toFixed(3)}`,
      );
    }
  }
  await backwardErrors(rng, { B: 1, Tq: 9, Tk: 12, Hq: 2, Hkv: 1, D: 16 }, undefined, 0.7);
});

Deno.test("fused attention: one dispatch forward, two backward; strided inputs; errors", async () => {
  const rt = await setup();
  const rng = new Rng(41);
  const c: Case = { B: 2, Tq: 9, Tk: 9, Hq: 4, Hkv: 2, D: 16 };
  const [q, k, v] = inputs(rng, c);
  const ts = [q, k, v].map((a) => up(a, true));
  const dO = up(randArr(rng, q.shape));
  const counts = () => {
    const before = rt.counters.dispatches;
    let mid = 0;
    tidy(() => {
      const o = ops.causalSelfAttention(ts[0], ts[1], ts[2], { impl: "fused" });
      mid = rt.counters.dispatches;
      const flat = o.reshape([c.B * c.Tq * c.Hq * c.D]); // a view: no dispatch
      backward(flat, dO.reshape([c.B * c.Tq * c.Hq * c.D]));
    });
    return [mid - before, rt.counters.dispatches - mid];
  };
  counts(); // creates the leaves' .grad
  const [fwd, bwd] = counts();
  assert.equal(fwd, 1, "forward dispatches");
  // backward: dq, dkv, and one accumulate into each leaf's .grad
  assert.equal(bwd, 2 + 3, "backward dispatches");
  ts.forEach((t) => (t.grad!.dispose(), t.grad = null));
  // strided q (a transposed view of [B, Hq, Tq, D]) gives the same result and gradient
  const qT = up({ data: transposeHeads(q), shape: [c.B, c.Hq, c.Tq, c.D] }, true);
  const outs = tidy(() => {
    const o = ops.fusedCausalAttention(qT.transpose(1, 2), ts[1], ts[2], { version: 1 });
    backward(o, dO);
    backward(ops.fusedCausalAttention(ts[0], ts[1], ts[2], { version: 1 }), dO);
    return [o];
  });
  const [o, gqT, gq] = await readAll([outs[0], qT.grad!, ts[0].grad!]);
  assertClose("strided q forward", o, attentionRef(q, k, v).data, 2e-6, 2e-5);
  assertClose("strided q gradient", transposeHeadsBack(gqT, c), gq, 1e-6, 1e-5);
  for (const t of [...ts, qT, dO, ...outs]) t.dispose();
  // bad input: the composed op's messages, for both implementations
  const q4 = up(randArr(rng, [1, 3, 4, 8])), k3 = up(randArr(rng, [1, 3, 3, 8]));
  const k2 = up(randArr(rng, [1, 2, 2, 8])), kD = up(randArr(rng, [1, 3, 2, 4]));
  for (const impl of ["fused", "composed"] as const) {
    const call = (a: Tensor, b: Tensor, opts = {}) =>
      ops.causalSelfAttention(a, b, b, { impl, ...opts });
    assert.throws(() => call(q4, k3), /4 query heads are not a multiple of 3/);
    assert.throws(() => call(q4, k2), /fewer keys \(2\) than queries \(3\)/);
    assert.throws(() => call(q4, kD), /k does not match q/);
    assert.throws(() => call(q4.reshape([3, 4, 8]), k2), /expected \[B, T, H, D\]/);
    assert.throws(() => call(q4, kD.reshape([1, 3, 4, 2])), /k does not match q/);
    assert.throws(
      () => call(q4, up(randArr(rng, [1, 3, 2, 8])), { scale: NaN }),
      /scale NaN is not a finite number/,
    );
  }
  assert.throws(
    () => ops.causalSelfAttention(q4, k3, k3, { impl: "flash" as "fused" }),
    /impl 'flash' is not "fused", "composed" or "auto"/,
  );
  assert.throws(() => setAttentionImpl("flash" as "fused"), /not "fused", "composed" or "auto"/);
  const i32 = tensor(new Int32Array(1 * 3 * 2 * 8), [1, 3, 2, 8]);
  assert.throws(() => ops.fusedCausalAttention(q4, i32, i32), /expected a f32 tensor/);
  for (const t of [q4, k3, k2, kD, i32]) t.dispose();
  assertNoGpuErrors();
  assert.ok(isGradEnabled());
});

function transposeHeads(q: Arr): Float64Array {
  const [B, T, H, D] = q.shape;
  const out = new Float64Array(q.data.length);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < H; h++) {
        for (let d = 0; d < D; d++) {
          out[((b * H + h) * T + t) * D + d] = q.data[((b * T + t) * H + h) * D + d];
        }
      }
    }
  }
  return out;
}

function transposeHeadsBack(x: ArrayLike<number>, c: Case): Float64Array {
  const { B, Tq: T, Hq: H, D } = c;
  const out = new Float64Array(x.length);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < H; h++) {
        for (let d = 0; d < D; d++) {
          out[((b * T + t) * H + h) * D + d] = x[((b * H + h) * T + t) * D + d];
        }
      }
    }
  }
  return out;
}

Deno.test("transformer loss and gradients: fused attention as composed", async () => {
  await setup();
  // the setter returns the previous default and attentionImpl() reports the current one
  const initial = setAttentionImpl("fused");
  assert.equal(attentionImpl(), "fused");
  assert.equal(setAttentionImpl(initial), "fused");
  assert.equal(attentionImpl(), initial);
  assert.ok(deviceAttentionTiles(8), "the device has tiles for D = 8");
  const worst = await transformerFusedVsComposed(1, 16, 16, 11);
  console.log(
    `transformer fused vs composed: worst err / (1e-7 + 1e-4·|want|) ${worst.toFixed(3)}`,
  );
  assert.ok(noGrad(() => isGradEnabled()) === false);
});

Deno.test('"auto" attention: version 2 wherever it applies; version 1 up to AUTO_FUSED_MAX_WORK, the composed ops past it', async () => {
  await setup();
  const rt = runtime();
  // forward dispatches of one call: the fused kernel is 1, the composed ops several
  // (recorded into a batch that is never submitted: the large case costs no GPU time)
  const forwardDispatches = (shape: number[], kvShape: number[]) => {
    const [q, k] = [zeros(shape), zeros(kvShape)];
    rt.flush();
    const batch = new ComputeBatch(rt.gpu);
    rt.recordInto(batch, () => tidy(() => void ops.causalSelfAttention(q, k, k, { impl: "auto" })));
    for (const t of [q, k]) t.dispose();
    return batch.length;
  };
  // version 2 applies to D = 8 on every device: fused past the bound too (1·128·512·512·8 = 2^28)
  assert.ok(deviceFlashTiles(8));
  assert.equal(forwardDispatches([1, 512, 128, 8], [1, 512, 4, 8]), 1);
  // version 1 (the only one where version 2's tiles do not fit) is bounded by the work
  const prev = setFusedAttentionVersion(1);
  try {
    autoVersion1(forwardDispatches);
  } finally {
    setFusedAttentionVersion(prev);
  }
  assert.equal(attentionImpl(), "auto", "the library default");
  assertNoGpuErrors();
});

// "auto" with version 1 pinned: fused up to the bound, composed past it.
function autoVersion1(forwardDispatches: (shape: number[], kv: number[]) => number): void {
  assert.equal(AUTO_FUSED_MAX_WORK, 2 ** 27);
  // B·Hq·T·T·D = 2·2·16·16·8: far below the bound
  assert.equal(forwardDispatches([2, 16, 2, 8], [2, 16, 1, 8]), 1);
  // 1·4·512·512·128 = 2^27: the bound itself, fused; 1·8·512·512·128 = 2^28: past it
  assert.equal(forwardDispatches([1, 512, 4, 128], [1, 512, 4, 128]), 1);
  // the composed ops upload their causal mask once per (T, Tk): made here, outside the batch
  const [qm, km] = [zeros([1, 512, 1, 4]), zeros([1, 512, 1, 4])];
  tidy(() => void ops.causalSelfAttention(qm, km, km, { impl: "composed" }));
  qm.dispose();
  km.dispose();
  assert.ok(forwardDispatches([1, 512, 8, 128], [1, 512, 8, 128]) > 1);
}
