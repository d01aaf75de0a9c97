// The matmul benchmark runs every version end to end on tiny shapes, validates each result, says
// why a version cannot run a shape instead of failing, and times versions interleaved so that a
// GPU whose speed drifts during a shape cannot make one dispatch look faster than itself.
import assert from "node:assert/strict";
import { ComputeBatch, type Dispatch } from "../src/gpu/batch.ts";
import { createStorageBuffer } from "../src/gpu/buffers.ts";
import { getGpu, type GpuContext } from "../src/gpu/device.ts";
import type { MatmulParams } from "../src/tensor/matmul/mod.ts";
import type { TimingSummary } from "../src/gpu/timing.ts";
import {
  benchMatmul,
  GPU_SHAPES,
  interleavedSchedule,
  type MatmulBenchShape,
  type MatmulBenchTimer,
  selectVersions,
} from "../bench/matmul/main.ts";
import { parseClockLine, startClockSampler, summariseClocks } from "../bench/matmul/clocks.ts";
import { MATMUL_VERSIONS } from "../bench/matmul/versions.ts";
import { DECODE_VERSIONS, decodeShapes, decodeStepLines } from "../bench/matmul/decode.ts";
import { ANCHORS } from "../src/nn/anchors.ts";
import { Transformer } from "../src/nn/transformer.ts";

Deno.test("matmul bench: every version runs or says why not, and every result checks", async () => {
  const rows = await benchMatmul({
    sizes: [
      { M: 36, N: 40, K: 1024 },
      { M: 33, N: 17, K: 20, transB: true },
      { M: 64, N: 64, K: 16, batchCount: 3, transA: true },
    ],
    repeats: 1,
    all: true,
  });
  assert.equal(rows.length, 3 * MATMUL_VERSIONS.length);
  for (const r of rows) {
    const where = `${r.version} ${r.M}×${r.N}×${r.K} ${r.layout} batch ${r.batch}`;
    if (r.skipped) {
      assert.ok(Number.isNaN(r.ms), where);
      continue;
    }
    assert.ok(r.ms > 0 && r.tflops > 0 && r.minMs <= r.ms, `${where}: ${r.ms} ms`);
    assert.ok(r.maxRatio !== null && r.maxRatio <= 1, `${where}: err/bound ${r.maxRatio}`);
    assert.ok(r.run && r.run.busy > 0 && r.run.roundFactors.length === 1, where);
  }
  const skipped = (id: string, layout: string) =>
    rows.find((r) => r.version === id && r.layout === layout)?.skipped;
  assert.match(skipped("v3", "NT") ?? "", /plain A·B only/);
  assert.match(skipped("v5", "NT") ?? "", /not a multiple of 4/, "N = 17 rows are not whole vec4");
  assert.equal(skipped("auto", "NT"), undefined, "encodeMatmul runs any shape");
  await assert.rejects(() => benchMatmul({ versions: ["v99"] }), /unknown matmul version/);
});

Deno.test("matmul bench: the default run leaves out the history versions", () => {
  const ids = selectVersions().map((v) => v.id);
  assert.ok(!ids.includes("v1") && !ids.includes("v3"));
  assert.ok(!ids.includes("v14") && !ids.includes("tiles"), "decode versions only with --decode");
  for (const id of ["v2", "v5", "v10", "v11", "v12", "v13", "auto"]) assert.ok(ids.includes(id));
  assert.deepEqual(
    selectVersions(undefined, true).map((v) => v.id),
    MATMUL_VERSIONS.map((v) => v.id),
  );
  assert.deepEqual(selectVersions(["auto", "v1"]).map((v) => v.id), ["v1", "auto"]);
});

Deno.test("matmul bench: the schedule gives every version every place once per cycle", () => {
  const [count, warmup, rounds] = [4, 1, 8];
  const order = interleavedSchedule(count, warmup, rounds);
  assert.equal(order.length, count * (warmup + rounds));
  for (let r = 0; r < warmup + rounds; r++) {
    const round = order.slice(r * count, (r + 1) * count);
    assert.deepEqual([...round].sort(), [0, 1, 2, 3], `round ${r} runs each version once`);
  }
  for (let v = 0; v < count; v++) {
    const places = new Set<number>();
    for (let r = 0; r < count; r++) places.add(order.slice(r * count, (r + 1) * count).indexOf(v));
    assert.equal(places.size, count, `version ${v} takes every place within ${count} rounds`);
  }
});

Deno.test("matmul bench: a GPU that slows down during a shape slows every version alike", async () => {
  // The first H100 sweep timed the versions one after another and the same dispatch read 39
  // TFLOP/s early in a block and 10 late. Here a stand-in timer makes every pass 0.5 ms slower
  // than the one before. v5, v9 and auto record the identical dispatch for this shape (a batch of
  // 96 tiles of 128², no split), so their figures must agree; run one after another they would
  // differ about 4×.
  let recorded = 0;
  const drifting: MatmulBenchTimer = (gpu, record, opts) => {
    const warmup = opts?.warmup ?? 2, repeats = opts?.repeats ?? 10;
    for (let i = 0; i < warmup + repeats; i++) {
      const batch = new ComputeBatch(gpu as GpuContext);
      record(batch);
      recorded += batch.length;
    }
    const samplesMs = Array.from({ length: repeats }, (_, i) => 1 + 0.5 * (warmup + i));
    const summary: TimingSummary = {
      medianMs: samplesMs[repeats >> 1],
      minMs: samplesMs[0],
      maxMs: samplesMs[repeats - 1],
      samplesMs,
      method: "gpu-timestamps",
    };
    return Promise.resolve(summary);
  };
  const rows = await benchMatmul({
    sizes: [{ M: 128, N: 128, K: 4, batchCount: 96 }],
    versions: ["v5", "v9", "auto"],
    repeats: 12,
    warmupRounds: 1,
    validate: false,
    timer: drifting,
  });
  assert.equal(recorded, 3 * 13, "one dispatch per pass, every pass recorded");
  const ms = rows.map((r) => r.ms);
  const spread = Math.max(...ms) / Math.min(...ms);
  assert.ok(spread < 1.25, `identical dispatches measured ${ms.join(", ")} ms`);
  // And the drift is reported: later rounds are slower than earlier ones.
  const f = rows[0].run!.roundFactors;
  assert.equal(f.length, 12);
  assert.ok(f[11] / f[0] > 2, `round factors ${f.join(" ")} hide the drift`);
});

Deno.test("matmul bench: nvidia-smi clock lines are parsed and summarised per window", () => {
  const line = "2026/11/23 04:10:01.250, 1980, 512.30, 0x0000000000000004";
  const s = parseClockLine(line)!;
  assert.equal(s.smMHz, 1980);
  assert.equal(s.watts, 512.3);
  assert.equal(s.reasons, 4);
  assert.equal(s.at, new Date(2026, 10, 23, 4, 10, 1, 250).getTime());
  assert.equal(parseClockLine("timestamp, clocks.current.sm [MHz], power.draw [W]"), undefined);
  assert.equal(parseClockLine(""), undefined);
  const noReasons = parseClockLine("2026/11/23 04:10:01.350, 345, [N/A]")!;
  assert.ok(Number.isNaN(noReasons.watts) && noReasons.reasons === 0 && noReasons.smMHz === 345);
  const samples = [0, 100, 200, 300].map((dt, i) => ({
    at: s.at + dt,
    smMHz: [1980, 345, 1755, 1980][i],
    watts: [500, 90, 450, 510][i],
    reasons: [0, 1, 4, 0][i],
  }));
  const w = summariseClocks(samples, s.at + 50, s.at + 250)!;
  assert.deepEqual(w, {
    samples: 2,
    medianMHz: (345 + 1755) / 2,
    minMHz: 345,
    maxMHz: 1755,
    maxWatts: 450,
    reasons: 5,
  });
  assert.equal(summariseClocks(samples, s.at + 400, s.at + 500), undefined);
});

Deno.test("matmul bench: auto, v5 and v9 record identical dispatches where the README says", async () => {
  // The first H100 sweep read auto at 6.5 against v5's 31.9 TFLOP/s (1024³) and v9/auto at
  // 10.7/10.1 against v5's 38.9 (8192×1536×512): the same dispatches, so the gap was the bench.
  const gpu = await getGpu();
  const byId = (id: string) => MATMUL_VERSIONS.find((v) => v.id === id)!;
  const record = (id: string, p: MatmulParams) => {
    const seen: unknown[] = [];
    const recorder = {
      dispatch(d: Dispatch) {
        seen.push({
          kernel: d.kernel.name,
          constants: d.constants,
          workgroups: d.workgroups,
          bindings: d.bindings.map((b) => ArrayBuffer.isView(b) ? Array.from(b as Uint32Array) : b),
        });
        return recorder;
      },
    };
    byId(id).encode(recorder as unknown as ComputeBatch, gpu, p);
    return seen;
  };
  // auto is v5 on every GPU shape; v9 (no split) is v5 wherever v5 does not split K on its own:
  // K < 1024 or at least 256 tiles of 128² (bench/matmul/README.md's controls).
  const shapes: Array<[MatmulBenchShape, string[]]> = GPU_SHAPES.map((s) => {
    const tiles = Math.ceil(s.M / 128) * Math.ceil(s.N / 128);
    return [s, s.K < 1024 || tiles >= 256 ? ["auto", "v9"] : ["auto"]];
  });
  assert.deepEqual(
    shapes.filter(([, t]) => t.length === 1).map(([s]) => `${s.M}×${s.N}×${s.K}`),
    ["1024×1024×1024", "1024×1024×4096", "512×1536×8192"],
  );
  for (const [s, twins] of shapes) {
    const n = s.batchCount ?? 1;
    const bytes = (e: number) => ({ buffer: createStorageBuffer(gpu, n * e * 4) });
    const p: MatmulParams = { ...s, a: bytes(s.M * s.K), b: bytes(s.K * s.N), c: bytes(s.M * s.N) };
    const v5 = record("v5", p);
    assert.ok(v5.length >= 1);
    for (const id of twins) {
      assert.deepEqual(record(id, p), v5, `${id} vs v5 on ${JSON.stringify(s)}`);
    }
    if (twins.length === 1) assert.notDeepEqual(record("v9", p), v5, "v5 splits here");
    // And the K-slab version really differs where K > 512 (as far as its partials fit a binding).
    if (s.K > 512 && !byId("v11").obstacle(gpu, p)) assert.notDeepEqual(record("v11", p), v5);
    for (const x of [p.a, p.b, p.c]) x.buffer.destroy();
  }
});

Deno.test("matmul bench: the clock sampler runs nvidia-smi in a loop and stops it", async () => {
  // A stand-in nvidia-smi on PATH that answers like the real one (one reading, or one every
  // -lms milliseconds), so the spawn, parse and stop are exercised on a machine without a GPU.
  const dir = await Deno.makeTempDir();
  const fake = `${dir}/nvidia-smi`;
  await Deno.writeTextFile(
    fake,
    `#!/bin/sh
line() { echo "$(date +'%Y/%m/%d %H:%M:%S.%3N'), 1980, 612.5, 0x0000000000000000"; }
case "$*" in *-lms*) while true; do line; sleep 0.05; done ;; *) line ;; esac
`,
  );
  await Deno.chmod(fake, 0o755);
  const path = Deno.env.get("PATH") ?? "";
  Deno.env.set("PATH", `${dir}:${path}`);
  try {
    const sampler = await startClockSampler(50);
    assert.ok(sampler, "the stand-in nvidia-smi was found");
    const from = Date.now();
    await new Promise((r) => setTimeout(r, 400));
    const to = Date.now();
    await sampler.stop();
    const w = summariseClocks(sampler.samples, from - 1000, to + 1000);
    assert.ok(w && w.samples >= 3, `${w?.samples} readings`);
    assert.equal(w.medianMHz, 1980);
    assert.equal(w.maxWatts, 612.5);
  } finally {
    Deno.env.set("PATH", path);
    await Deno.remove(dir, { recursive: true });
  }
  Deno.env.set("PATH", "/nonexistent");
  try {
    assert.equal(await startClockSampler(50), undefined, "no nvidia-smi: no sampler");
  } finally {
    Deno.env.set("PATH", path);
  }
});

Deno.test("matmul bench: the decode set is every weight of a decode step, once per use", () => {
  // Each weight matrix [out, in] of the model is one NT product of M rows per step (the tied
  // embedding as the classifier); the set's shapes and counts must say exactly that.
  const shapes = decodeShapes(ANCHORS, 64);
  for (const a of ANCHORS) {
    const mine = shapes.filter((s) => s.anchor === a.name);
    const want = new Map<string, number>();
    for (const [name, shape] of Transformer.shapes(a.config)) {
      if (shape.length !== 2) continue;
      const key = `${shape[0]}×${shape[1]}`;
      want.set(key, (want.get(key) ?? 0) + 1);
      assert.ok(name === "model.embed_tokens.weight" || name.startsWith("model.layers."), name);
    }
    const got = new Map(mine.map((s) => [`${s.N}×${s.K}`, s.perStep]));
    assert.deepEqual(got, want, a.name);
    for (const s of mine) assert.ok(s.M === 64 && s.transB && !s.transA, `${a.name} ${s.role}`);
  }
});

Deno.test("matmul bench: the decode versions run and check on a scaled-down decode set", async () => {
  // The 0.8M anchor's products at 8 rows (llvmpipe-sized): every decode version runs every shape,
  // and the per-step sum covers them all.
  const shapes = decodeShapes(ANCHORS.slice(0, 1), 8);
  const rows = await benchMatmul({ sizes: shapes, repeats: 1, versions: DECODE_VERSIONS });
  assert.equal(rows.length, shapes.length * DECODE_VERSIONS.length);
  for (const r of rows) {
    assert.equal(r.skipped, undefined, `${r.version} ${r.N}×${r.K}`);
    assert.ok(r.maxRatio !== null && r.maxRatio <= 1, `${r.version} ${r.N}×${r.K}: ${r.maxRatio}`);
  }
  const [, line] = decodeStepLines(rows, shapes);
  for (const id of DECODE_VERSIONS) assert.match(line, new RegExp(`${id} \\d+`), line);
});
