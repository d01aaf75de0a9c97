/**
 * `jackpotWeights` over logits held as row blocks (several GPU buffers, as a batch larger than
 * maxBufferSize must be): mask, w, ρ, row data and statistics bit-identical to the one-buffer
 * call, for uneven blocks, tiles inside blocks, p_target new and ref, exact Z on and off, the
 * sort top-k and the captured top-k actor; and the bad-block errors.
 */
import assert from "node:assert/strict";
import { topkIds } from "../src/obrs/reference/mod.ts";
import {
  type JackpotBatch,
  type JackpotParams,
  jackpotWeights,
  type LogitBlock,
  pairedTiles,
  recordLogSoftmax,
  sourceTiles,
} from "../src/obrs/gpu/mod.ts";
import { readBuffers } from "../src/gpu/mod.ts";
import { gpu, makeBatch, run, upload, zeros } from "./obrs_gpu_util.ts";

type Batch = ReturnType<typeof makeBatch>;

/** Uploads rows of `x` as blocks of the given row counts. */
function blocks(x: Float32Array, vocab: number, rows: number[]): LogitBlock[] {
  let r0 = 0;
  return rows.map((r) => {
    const b = { buffer: upload(x.slice(r0 * vocab, (r0 + r) * vocab)), rows: r };
    r0 += r;
    return b;
  });
}

/** Everything a run leaves, as raw bits (so that -0, NaN payloads and ulps all count). */
async function runBits(batch: JackpotBatch, params: JackpotParams) {
  const r = await jackpotWeights(gpu, batch, { onNonFinite: "report", ...params });
  const out = await readBuffers(gpu, [r.mask, r.w, r.rho, r.rowData].map((buffer) => ({ buffer })));
  const n = r.rows;
  const bits = {
    mask: new Uint32Array(out[0], 0, n),
    w: new Uint32Array(out[1], 0, n),
    rho: new Uint32Array(out[2], 0, n),
    rowData: new Uint32Array(out[3], 0, n * 8),
    stats: r.stats,
  };
  r.destroy();
  return bits;
}

interface Split {
  inf: number[];
  nw: number[];
  ref: number[];
}

/** The batch with each matrix as one buffer (split undefined) or as row blocks. */
function gpuBatch(b: Batch, split?: Split, captured?: number): JackpotBatch {
  const { rows, vocab } = b;
  const m = (x: Float32Array, s?: number[]) => ({
    data: s ? blocks(x, vocab, s) : upload(x),
    shape: [rows, vocab] as const,
  });
  const infLogits = m(b.inf, split?.inf);
  let inf: JackpotBatch["inf"] = { logits: infLogits };
  if (captured) {
    const ids = new Uint32Array(rows * captured), logp = new Float32Array(rows * captured);
    const sampled = new Float32Array(rows);
    for (let r = 0; r < rows; r++) {
      const row = b.logpInf.subarray(r * vocab, (r + 1) * vocab);
      topkIds(row, captured).forEach((id, j) => {
        ids[r * captured + j] = id;
        logp[r * captured + j] = Math.min(0, row[id]);
      });
      sampled[r] = row[b.tokens[r]];
    }
    inf = { topkIds: ids, topkLogp: logp, capturedK: captured, sampledLogp: sampled, ...inf };
  }
  return {
    tokens: b.tokens,
    valid: b.valid,
    inf,
    newLogits: m(b.nw, split?.nw),
    ref: { logits: m(b.ref, split?.ref) },
  };
}

/** Asserts that the blocked run gives the one-buffer run's bits. */
async function assertSame(
  label: string,
  b: Batch,
  split: Split,
  params: JackpotParams,
  captured?: number,
) {
  const want = await runBits(gpuBatch(b, undefined, captured), params);
  const got = await runBits(gpuBatch(b, split, captured), params);
  for (const key of ["mask", "w", "rho", "rowData"] as const) {
    assert.deepEqual(got[key], want[key], `${label}: ${key} differs`);
  }
  assert.deepEqual(got.stats, want.stats, `${label}: stats differ`);
  // The comparison must be able to see something: some rows accepted, some weights non-zero.
  assert.ok(want.stats.acceptedCount > 0 && want.w.some((x) => x !== 0), `${label}: empty run`);
}

Deno.test("jackpotWeights over row blocks = one buffer, bit for bit", async () => {
  const b = makeBatch(31, 20, 320); // 1,280-byte rows: every row offset is 256-aligned
  const uneven: Split = { inf: [7, 1, 12], nw: [7, 1, 12], ref: [7, 1, 12] };
  const other: Split = { inf: [7, 1, 12], nw: [10, 10], ref: [3, 17] };
  const tiny = 4 * 320 * 4; // 4-row tiles inside the 7- and 12-row blocks
  for (const target of ["new", "ref"] as const) {
    for (const exactZ of [false, true]) {
      const p = { k: 6, seed: 9, target, exactZ, lambda: 0.7 };
      await assertSame(`${target} exactZ=${exactZ}`, b, uneven, p);
      await assertSame(`${target} exactZ=${exactZ} tiled`, b, uneven, {
        ...p,
        maxBindingBytes: tiny,
      });
    }
    // Different block boundaries in each matrix: exact Z tiles at the union of the boundaries.
    await assertSame(`${target} other blocks`, b, other, { k: 6, seed: 3, target, exactZ: true });
  }
  await assertSame("sort top-k", b, uneven, {
    k: 5,
    seed: 2,
    topkMethod: "sort",
    maxBindingBytes: tiny,
  });
  const cp = { k: 6, seed: 4, exactZ: true };
  await assertSame("captured top-k", b, uneven, cp, 8);
  await assertSame("captured top-k tiled", b, other, { ...cp, maxBindingBytes: tiny }, 8);
});

Deno.test("jackpotWeights over row blocks, V % 4 != 0 (scalar reads)", async () => {
  const b = makeBatch(32, 9, 250);
  const split: Split = { inf: [2, 7], nw: [2, 7], ref: [2, 7] };
  await assertSame("V=250", b, split, { k: 5, seed: 6, target: "ref", exactZ: true });
});

Deno.test("sourceTiles and pairedTiles cover every row once, at global rows", () => {
  const vocab = 320, rowBytes = vocab * 4;
  const bufs = [1, 2, 3].map(() => upload(new Float32Array(16)));
  const src = [{ buffer: bufs[0], rows: 7 }, { buffer: bufs[1], rows: 1 }, {
    buffer: bufs[2],
    rows: 12,
  }];
  const tiles = sourceTiles(gpu, src, 20, vocab, 4 * rowBytes);
  let next = 0;
  for (const t of tiles) {
    assert.equal(t.row0, next);
    const block = t.row0 < 7 ? 0 : t.row0 < 8 ? 1 : 2;
    assert.equal(t.buffer, bufs[block]);
    assert.equal(t.offset, (t.row0 - [0, 7, 8][block]) * rowBytes);
    assert.equal(t.size, t.rows * rowBytes);
    assert.ok(t.size <= 4 * rowBytes);
    next += t.rows;
  }
  assert.equal(next, 20);
  const pairs = pairedTiles(
    gpu,
    src,
    [{ buffer: bufs[0], rows: 10 }, {
      buffer: bufs[1],
      rows: 10,
    }],
    20,
    vocab,
    "x",
  );
  assert.deepEqual(pairs.map((t) => [t.row0, t.rows]), [[0, 7], [7, 1], [8, 2], [10, 10]]);
  assert.deepEqual(pairs.map((t) => t.b.offset / rowBytes), [0, 7, 8, 0]);
  assert.deepEqual(pairs.map((t) => t.a.offset / rowBytes), [0, 0, 0, 2]);
  bufs.forEach((x) => x.destroy());
});

Deno.test("row blocks: bad blocks fail with one clear sentence", async () => {
  const b = makeBatch(33, 9, 250);
  const good = gpuBatch(b, { inf: [2, 7], nw: [2, 7], ref: [2, 7] });
  const p = { k: 4, seed: 1 };
  const withNew = (data: LogitBlock[]): JackpotBatch => ({
    ...good,
    newLogits: { data, shape: [9, 250] },
  });
  const buf = (rows: number) => upload(new Float32Array(rows * 250));
  await assert.rejects(
    jackpotWeights(gpu, withNew([{ buffer: buf(2), rows: 2 }, { buffer: buf(6), rows: 6 }]), p),
    /p_new logits: the row blocks hold 8 rows in all, but the matrix has 9/,
  );
  await assert.rejects(
    jackpotWeights(gpu, withNew([{ buffer: buf(2), rows: 2 }, { buffer: buf(6), rows: 7 }]), p),
    /p_new logits block 1 holds 6000 bytes, fewer than \[7, 250\] f32 needs/,
  );
  await assert.rejects(
    jackpotWeights(gpu, withNew([{ buffer: buf(2), rows: 2.5 }, { buffer: buf(7), rows: 6.5 }]), p),
    /p_new logits block 0: rows must be a positive integer, got 2.5/,
  );
  await assert.rejects(
    jackpotWeights(gpu, withNew([]), p),
    /p_new logits: the list of row blocks is empty/,
  );
  const noStorage = gpu.device.createBuffer({ size: 7 * 250 * 4, usage: GPUBufferUsage.COPY_DST });
  await assert.rejects(
    jackpotWeights(gpu, withNew([{ buffer: buf(2), rows: 2 }, { buffer: noStorage, rows: 7 }]), p),
    /p_new logits block 1: the GPUBuffer needs STORAGE usage/,
  );
  noStorage.destroy();
  // 1,000-byte rows: the second block's rows start at offsets the device cannot bind in one buffer.
  const mismatched = {
    ...gpuBatch(b),
    inf: { logits: { data: blocks(b.inf, 250, [2, 7]), shape: [9, 250] as const } },
  };
  await assert.rejects(
    jackpotWeights(gpu, mismatched, { ...p, exactZ: true }),
    /p_inf and p_new logits must be split into the same row blocks for exactZ/,
  );
  // Without exact Z the same split is fine: each matrix is tiled on its own.
  const r = await jackpotWeights(gpu, mismatched, { ...p, onNonFinite: "report" });
  assert.equal(r.rows, 9);
  r.destroy();
});

Deno.test("recordLogSoftmax over row blocks = one buffer, bit for bit", async () => {
  const b = makeBatch(34, 20, 320), n = 20, v = 320;
  const lse1 = zeros(n * 4), out1 = zeros(n * v * 4), lse2 = zeros(n * 4);
  const x = blocks(b.nw, v, [7, 1, 12]);
  const out2 = [7, 1, 12].map((rows) => ({ buffer: zeros(rows * v * 4), rows }));
  const got = await run((c) => {
    recordLogSoftmax(gpu, c, { x: upload(b.nw), rows: n, vocab: v, lse: lse1, out: out1 });
    recordLogSoftmax(gpu, c, {
      x,
      rows: n,
      vocab: v,
      lse: lse2,
      out: out2,
      maxBindingBytes: 4 * v * 4,
    });
  }, [lse1, out1, lse2, ...out2.map((o) => o.buffer)]);
  assert.deepEqual(new Uint32Array(got[2]), new Uint32Array(got[0]));
  const blocked = new Uint8Array(n * v * 4);
  let o = 0;
  for (const g of got.slice(3)) {
    blocked.set(new Uint8Array(g), o);
    o += g.byteLength;
  }
  assert.deepEqual(blocked, new Uint8Array(got[1]));
  assert.ok(new Float32Array(got[0]).some((y) => y !== 0));
});
