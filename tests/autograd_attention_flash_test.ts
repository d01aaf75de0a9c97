// Version 2 of the fused causal attention (kernels/attention_flash.wgsl, register-tiled) against
// the float64 reference: forward over random and edge shapes (Tq = Tk and Tq < Tk, T = 1, B = 1,
// T past and short of the tiles, Hq = Hkv and G = 2, 4, D = 4 .. 64, peaked and flat rows) at the
// device's tiles and at forced small tiles (many row blocks, every vec4 width of the outputs);
// backward against the float64 analytic backward and the composed op, and by central finite
// differences of the reference on tiny shapes; the tile choice, the fallback to version 1 and the
// dispatch count; the transformer's loss and gradients with v2 as with the composed ops.
import assert from "node:assert/strict";
import { backward, ops } from "../src/autograd/mod.ts";
import {
  deviceFlashTiles,
  fusedAttentionVersion,
  setFusedAttentionVersion,
} from "../src/autograd/attention_fused.ts";
import {
  flashAttentionTiles,
  type FlashTile,
  flashTileBytes,
  type FlashTiles,
} from "../src/autograd/attention_flash.ts";
import { attentionRef } from "../src/autograd/reference.ts";
import { readAll, runtime, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import {
  assertClose,
  assertNoGpuErrors,
  checkOp,
  closeness,
  randArr,
  setup,
  up,
} from "./autograd_util.ts";
import {
  attentionBackwardRef,
  type Case,
  inputs,
  label,
  transformerFusedVsComposed,
} from "./autograd_attention_util.ts";

// One tile for all three entry points (D = 4·dv·tc).
const same = (t: FlashTile): FlashTiles => ({ forward: t, dq: t, dkv: t });

// Forced tiles per D: few thread rows (so T = 33 spans many row blocks and key tiles) and every
// output width dv = 1, 2, 4 (the device's tiles use dv = 4 only at D = 128).
function forcedTiles(D: number): FlashTiles[] {
  const D4 = D / 4;
  const out: FlashTiles[] = [];
  // only tiles this device can run (a GPU rejects a pipeline past its workgroup memory)
  const limit = runtime().gpu.limits.maxComputeWorkgroupStorageSize ?? 16384;
  for (const dv of [1, 2, 4]) {
    if (D4 % dv !== 0) continue;
    const t = same({ tr: dv === 2 ? 2 : 1, tc: D4 / dv, dv, pad: dv === 4 ? 0 : 1 });
    const kinds = ["forward", "dq", "dkv"] as const;
    if (kinds.every((k) => flashTileBytes(k, D, t[k]) <= limit)) out.push(t);
  }
  return out;
}

const describe = (t?: FlashTiles) =>
  t
    ? `tiles tr ${t.forward.tr} tc ${t.forward.tc} dv ${t.forward.dv} pad ${t.forward.pad}`
    : "device tiles";

// Every case's v2 output in one readback, against the float64 reference.
async function checkForward(cases: Case[], seed: number, tiles?: (c: Case) => FlashTiles) {
  const rng = new Rng(seed);
  const ins = cases.map((c) => inputs(rng, c));
  const outs = tidy(() =>
    ins.map(([q, k, v], i) =>
      ops.fusedCausalAttention(up(q), up(k), up(v), {
        version: 2,
        flashTiles: tiles?.(cases[i]),
      })
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
    assertClose(`v2 forward ${label(c)} ${describe(tiles?.(c))}`, got[i], want, atol, rtol);
  });
  return worst;
}

function randomCases(rng: Rng, n: number, Ds: number[]): Case[] {
  const Ts = [1, 2, 7, 16, 33, 70];
  const Gs = [1, 2, 4];
  return Array.from({ length: n }, () => {
    const Tq = Ts[rng.int(Ts.length)];
    const Tk = rng.uniform() < 0.5 ? Tq : Tq + 1 + rng.int(9);
    const G = Gs[rng.int(Gs.length)];
    const Hkv = 1 + rng.int(2);
    const r = rng.uniform();
    return {
      B: 1 + rng.int(2),
      Tq,
      Tk,
      Hq: G * Hkv,
      Hkv,
      D: Ds[rng.int(Ds.length)],
      qScale: r < 0.15 ? 30 : r < 0.25 ? 0 : undefined,
    };
  });
}

// The edges: T = 1, one query past many keys, B = 1, Hq = Hkv, G = 4, T not a multiple of the
// tiles, peaked and flat rows.
const EDGES: Case[] = [
  { B: 1, Tq: 1, Tk: 1, Hq: 1, Hkv: 1, D: 4 },
  { B: 2, Tq: 1, Tk: 9, Hq: 4, Hkv: 1, D: 32 },
  { B: 1, Tq: 2, Tk: 3, Hq: 2, Hkv: 2, D: 12 },
  { B: 2, Tq: 33, Tk: 33, Hq: 4, Hkv: 1, D: 16 },
  { B: 1, Tq: 17, Tk: 40, Hq: 2, Hkv: 1, D: 64 },
  { B: 1, Tq: 70, Tk: 70, Hq: 2, Hkv: 1, D: 64, qScale: 30 },
  { B: 2, Tq: 65, Tk: 65, Hq: 2, Hkv: 2, D: 32, qScale: 0 },
];

Deno.test("flash attention (v2) forward matches the float64 reference", async () => {
  await setup();
  const worst: string[] = [];
  for (const seed of [1, 2]) {
    const rng = new Rng(200 + seed);
    worst.push(`${(await checkForward(randomCases(rng, 12, [8, 32, 64]), seed)).toFixed(3)}`);
  }
  worst.push(`edges ${(await checkForward(EDGES, 3)).toFixed(3)}`);
  // forced small tiles: many blocks, every output width
  for (const pick of [0, 1, 2]) {
    const tiles = (c: Case) => {
      const ts = forcedTiles(c.D);
      return ts[Math.min(pick, ts.length - 1)];
    };
    const rng = new Rng(300 + pick);
    const cases = [...EDGES, ...randomCases(rng, 6, [4, 16, 32, 64])];
    worst.push(`forced ${pick} ${(await checkForward(cases, 10 + pick, tiles)).toFixed(3)}`);
  }
  console.log(`v2 forward: worst |err| / (1e-6 + 1e-5·|want|) per batch: ${worst.join(", ")}`);
});

// v2's gradients against the float64 analytic backward and the composed op for one case.
async function backwardErrors(rng: Rng, c: Case, tiles?: FlashTiles, scale?: number) {
  const [q, k, v] = inputs(rng, c);
  const dO = randArr(rng, q.shape);
  const want = attentionBackwardRef(q, k, v, dO, scale);
  const grads = (impl: "fused" | "composed") => {
    const ts = [q, k, v].map((a) => up(a, true));
    tidy(() => {
      const o = impl === "fused"
        ? ops.fusedCausalAttention(ts[0], ts[1], ts[2], { version: 2, flashTiles: tiles, scale })
        : ops.causalSelfAttention(ts[0], ts[1], ts[2], { impl, scale });
      backward(o, up(dO));
    });
    return ts;
  };
  const fused = grads("fused"), composed = grads("composed");
  const got = await readAll([...fused, ...composed].map((t) => t.grad!));
  [...fused, ...composed].forEach((t) => t.dispose());
  assertNoGpuErrors();
  let worst = 0;
  ["dq", "dk", "dv"].forEach((name, i) => {
    const what = `${name} ${label(c)} (${describe(tiles)})`;
    const loose = c.qScale !== undefined && c.qScale > 1 ? 3 : 1;
    assertClose(`v2 ${what} vs float64`, got[i], want[i].data, 2e-5 * loose, 2e-4 * loose);
    assertClose(`v2 vs composed ${what}`, got[i], got[i + 3], 3e-5 * loose, 3e-4 * loose);
    worst = Math.max(worst, closeness(got[i], want[i].data, 1e-6, 1e-5));
  });
  return worst;
}

Deno.test("flash attention (v2) backward matches float64 and the composed op", async () => {
  await setup();
  const rng = new Rng(31);
  const cases: Case[] = [
    { B: 2, Tq: 33, Tk: 33, Hq: 4, Hkv: 2, D: 32 },
    { B: 1, Tq: 65, Tk: 65, Hq: 4, Hkv: 1, D: 64 },
    { B: 1, Tq: 7, Tk: 16, Hq: 2, Hkv: 2, D: 8 },
    { B: 1, Tq: 1, Tk: 33, Hq: 4, Hkv: 2, D: 32 },
    { B: 1, Tq: 40, Tk: 40, Hq: 2, Hkv: 1, D: 20, qScale: 30 },
    { B: 1, Tq: 33, Tk: 33, Hq: 2, Hkv: 2, D: 64, qScale: 0 },
    { B: 1, Tq: 19, Tk: 30, Hq: 2, Hkv: 1, D: 12 },
  ];
  const lines: string[] = [];
  for (const c of cases) {
    lines.push(`${label(c)} device ${(await backwardErrors(rng, c)).toFixed(3)}`);
    for (const t of forcedTiles(c.D)) {
      lines.push(`${label(c)} ${describe(t)} ${(await backwardErrors(rng, c, t)).toFixed(3)}`);
    }
  }
  await backwardErrors(rng, { B: 1, Tq: 9, Tk: 12, Hq: 2, Hkv: 1, D: 16 }, undefined, 0.7);
  console.log(`v2 backward: worst err / (1e-6 + 1e-5·|want|):\n  ${lines.join("\n  ")}`);
});

Deno.test("flash attention (v2) backward: finite differences of the float64 reference", async () => {
  await setup();
  const rng = new Rng(11);
  const cases: Case[] = [
    { B: 2, Tq: 5, Tk: 5, Hq: 2, Hkv: 2, D: 4 },
    { B: 1, Tq: 6, Tk: 6, Hq: 4, Hkv: 1, D: 8 },
    { B: 1, Tq: 2, Tk: 7, Hq: 2, Hkv: 1, D: 4 },
    { B: 1, Tq: 6, Tk: 6, Hq: 2, Hkv: 1, D: 8, qScale: 4 },
  ];
  for (const [i, c] of cases.entries()) {
    for (const flashTiles of [undefined, forcedTiles(c.D)[0]]) {
      await checkOp({
        name: `v2 attention ${label(c)} ${describe(flashTiles)}`,
        inputs: inputs(rng, c),
        gpu: ([q, k, v]) => ops.fusedCausalAttention(q, k, v, { version: 2, flashTiles }),
        ref: ([q, k, v]) => attentionRef(q, k, v),
        fwd: [1e-5, 1e-4],
        gpuH: i === 0 ? 1e-2 : 0,
        seed: 20 + i,
      });
    }
  }
});

Deno.test("flash attention (v2) tiles: budget, threads, fallback to v1, dispatches", async () => {
  const rt = await setup();
  for (const budget of [16384, 32768, 49152]) {
    for (const D of [4, 8, 12, 16, 32, 64, 128]) {
      const t = flashAttentionTiles(D, budget);
      if (!t) continue;
      for (const kind of ["forward", "dq", "dkv"] as const) {
        const tile: FlashTile = t[kind];
        assert.equal(4 * tile.dv * tile.tc, D, `D=${D} ${kind}: 4·dv·tc`);
        assert.ok([1, 2, 4].includes(tile.dv));
        assert.ok(tile.tr * tile.tc <= 256, `D=${D} ${kind}: threads`);
        assert.ok(flashTileBytes(kind, D, tile) <= budget, `D=${D} ${kind} fits ${budget}`);
      }
    }
  }
  // the anchors' head dimensions at llvmpipe's 32 KiB; D = 64 needs more than 16 KiB
  assert.ok(flashAttentionTiles(32, 16384));
  assert.ok(flashAttentionTiles(64, 32768));
  assert.equal(flashAttentionTiles(64, 16384), null);
  for (const D of [0, 5, 6, 30, 4.5]) assert.equal(flashAttentionTiles(D, 32768), null, `D=${D}`);
  // D = 6 and D = 64 at 16 KiB run version 1, with the same results
  const rng = new Rng(5);
  const fallback: Case[] = [{ B: 1, Tq: 9, Tk: 9, Hq: 2, Hkv: 1, D: 6 }];
  const ins = fallback.map((c) => inputs(rng, c));
  const [o] = await readAll(
    tidy(() => [ops.fusedCausalAttention(up(ins[0][0]), up(ins[0][1]), up(ins[0][2]))]),
  );
  assertClose("v2 falls back to v1 at D = 6", o, attentionRef(...ins[0]).data, 2e-6, 2e-5);
  // one dispatch forward, two backward (plus one accumulate into each leaf's .grad)
  assert.equal(fusedAttentionVersion(), 2, "the default version");
  assert.ok(deviceFlashTiles(16), "the device has v2 tiles for D = 16");
  const c: Case = { B: 2, Tq: 9, Tk: 9, Hq: 4, Hkv: 2, D: 16 };
  const ts = inputs(rng, c).map((a) => up(a, true));
  const dO = up(randArr(rng, [c.B, c.Tq, c.Hq, c.D]));
  const counts = () => {
    const before = rt.counters.dispatches;
    let mid = 0;
    tidy(() => {
      const out = ops.causalSelfAttention(ts[0], ts[1], ts[2], { impl: "fused" });
      mid = rt.counters.dispatches;
      backward(out, dO);
    });
    return [mid - before, rt.counters.dispatches - mid];
  };
  counts();
  assert.deepEqual(counts(), [1, 2 + 3], "forward, backward dispatches");
  for (const t of [...ts, dO]) t.dispose();
  assert.throws(() => setFusedAttentionVersion(3 as 2), /3 is not 1 or 2/);
  // strided q (a transposed view of [B, Hq, Tq, D]) is materialised: the same output
  const [q, k, v] = inputs(rng, c);
  const qHeads = new Float64Array(q.data.length);
  for (let b = 0; b < c.B; b++) {
    for (let t = 0; t < c.Tq; t++) {
      for (let h = 0; h < c.Hq; h++) {
        for (let d = 0; d < c.D; d++) {
          qHeads[((b * c.Hq + h) * c.Tq + t) * c.D + d] =
            q.data[((b * c.Tq + t) * c.Hq + h) * c.D + d];
        }
      }
    }
  }
  const qT = up({ data: qHeads, shape: [c.B, c.Hq, c.Tq, c.D] });
  const strided = tidy(
    () => [ops.fusedCausalAttention(qT.transpose(1, 2), up(k), up(v), { version: 2 })],
  );
  const [got] = await readAll(strided);
  assertClose("v2 strided q", got, attentionRef(q, k, v).data, 2e-6, 2e-5);
  strided.forEach((t) => t.dispose());
  // tiles that do not cover D, or are malformed
  const bad = (t: FlashTile) => () => ops.fusedCausalAttention(qT, qT, qT, { flashTiles: same(t) });
  assert.throws(bad({ tr: 2, tc: 2, dv: 1, pad: 0 }), /covers D = 8, not 16/);
  assert.throws(bad({ tr: 2, tc: 2, dv: 3, pad: 0 }), /malformed/);
  assert.throws(bad({ tr: 0, tc: 4, dv: 1, pad: 0 }), /malformed/);
  // tiles past the device's threads (64·4 = 256 is the most WebGPU guarantees; 1,024 is past
  // every adapter's limit here) or workgroup memory: an error, not a pipeline the device rejects
  assert.throws(bad({ tr: 256, tc: 4, dv: 1, pad: 0 }), /threads; this device offers/);
  assert.throws(
    () =>
      ops.fusedCausalAttention(qT, qT, qT, {
        flashTiles: same({ tr: 4, tc: 4, dv: 1, pad: 0 }),
        workgroupBytes: 1024,
      }),
    /bytes of workgroup memory/,
  );
  qT.dispose();
  assertNoGpuErrors();
});

Deno.test("transformer loss and gradients: fused v2 attention as composed", async () => {
  await setup();
  const worst = await transformerFusedVsComposed(2, 32, 40, 37);
  console.log(`transformer v2 vs composed: worst err / (1e-7 + 1e-4·|want|) ${worst.toFixed(3)}`);
});
