// The per-dispatch profiler (src/gpu/profile.ts): every dispatch of every submit while it runs is
// timed in a pass of its own, attributed to the right kernel, and the work's results are unchanged.
import assert from "node:assert/strict";
import {
  activeProfiler,
  ComputeBatch,
  formatProfile,
  getGpu,
  type Kernel,
  readBuffers,
  startProfiling,
  summariseProfile,
  uploadBuffer,
} from "../src/gpu/mod.ts";
import { initTensors, keep, randn, readAll, tidy } from "../src/tensor/mod.ts";
import { ops } from "../src/autograd/mod.ts";

const gpu = await getGpu();

// x[i] = x[i] · 1.0001 + 1, `rounds` times per element: the work grows with `rounds`.
const spinKernel: Kernel = {
  name: "test_spin",
  code: `
struct Params { count: u32, rounds: u32 }
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  if (g.x >= p.count) { return; }
  var v = x[g.x];
  for (var r = 0u; r < p.rounds; r++) { v = v * 1.0001 + 1.0; }
  x[g.x] = v;
}
@compute @workgroup_size(64)
fn twice(@builtin(global_invocation_id) g: vec3u) {
  if (g.x < p.count) { x[g.x] = 2.0 * x[g.x]; }
}`,
};

function spin(x: GPUBuffer, count: number, rounds: number, entryPoint = "main") {
  return {
    kernel: spinKernel,
    entryPoint,
    bindings: [x, new Uint32Array([count, rounds])],
    workgroups: [Math.ceil(count / 64)] as [number],
  };
}

Deno.test("profiler: one timing per dispatch, in order, attributed to its kernel; results unchanged", async () => {
  if (!gpu.hasTimestamps) return; // the adapter cannot time; nothing to profile
  const n = 1000;
  const init = Float32Array.from({ length: n }, (_, i) => (i % 17) / 17);
  const x = uploadBuffer(gpu, init);
  const unprofiled = uploadBuffer(gpu, init);
  new ComputeBatch(gpu).dispatch(spin(unprofiled, n, 1)).dispatch(spin(unprofiled, n, 0, "twice"))
    .dispatch(spin(unprofiled, n, 20000)).dispatch(spin(unprofiled, n, 3)).submit();
  const profiler = startProfiling(gpu);
  assert.equal(activeProfiler(), profiler);
  // two submits: the profiler spans them
  const a = new ComputeBatch(gpu);
  a.dispatch(spin(x, n, 1)).dispatch(spin(x, n, 0, "twice"));
  a.submit();
  const b = new ComputeBatch(gpu);
  b.dispatch(spin(x, n, 20000)).dispatch(spin(x, n, 3));
  b.submit();
  assert.equal(profiler.length, 4);
  const timings = await profiler.finish();
  assert.equal(activeProfiler(), undefined);
  assert.deepEqual(timings.map((t) => t.entryPoint), ["main", "twice", "main", "main"]);
  assert.ok(timings.every((t) => t.kernel === "test_spin" && Number.isFinite(t.ms) && t.ms >= 0));
  assert.deepEqual(timings[0].workgroups, [16, 1, 1]);
  // 20,000 rounds per element against 3: the heavy dispatch's pass must carry the time
  assert.ok(
    timings[2].ms > 5 * timings[3].ms,
    `heavy ${timings[2].ms} ms vs light ${timings[3].ms} ms`,
  );
  // the same work in one pass gives the same bits
  const [got, want] = await readBuffers(gpu, [{ buffer: x }, { buffer: unprofiled }]);
  assert.deepEqual(new Float32Array(got), new Float32Array(want));
  assert.notDeepEqual(new Float32Array(got), init);
  x.destroy();
  unprofiled.destroy();

  const byKernel = summariseProfile(timings);
  assert.deepEqual(byKernel.map((r) => [r.label, r.count]).sort(), [
    ["test_spin:main", 3],
    ["test_spin:twice", 1],
  ]);
  const total = timings.reduce((s, t) => s + t.ms, 0);
  assert.ok(Math.abs(byKernel.reduce((s, r) => s + r.totalMs, 0) - total) < 1e-9);
  assert.ok(Math.abs(byKernel.reduce((s, r) => s + r.share, 0) - 1) < 1e-9);
  const byDispatch = summariseProfile(timings, { groupBy: "dispatch", repeats: 1 });
  assert.equal(byDispatch.length, 2); // same workgroups and no constants: same groups
  assert.match(formatProfile(byKernel), /total 4 dispatches/);
});

Deno.test("profiler: a training step profiles every dispatch the batch recorded", async () => {
  if (!gpu.hasTimestamps) return;
  const rt = await initTensors(gpu);
  const w = keep(randn([16, 8], { seed: 3 }));
  w.requiresGrad = true;
  const x = keep(randn([4, 16], { seed: 4 }));
  const step = () => tidy(() => ops.sum(ops.silu(ops.matmul(x, w))).backward());
  step(); // pipelines compiled, pool filled
  rt.flush();
  const batch = new ComputeBatch(gpu);
  rt.recordInto(batch, step);
  const profiler = startProfiling(gpu);
  batch.submit();
  const timings = await profiler.finish();
  assert.equal(timings.length, batch.length);
  assert.ok(timings.some((t) => t.kernel.startsWith("matmul")));
  await readAll([w.grad!]);
  w.dispose();
  x.dispose();
});

Deno.test("profiler: one at a time, no pass timestamps meanwhile, finish once", async () => {
  if (!gpu.hasTimestamps) {
    assert.throws(() => startProfiling(gpu), /no timestamp-query/);
    return;
  }
  const profiler = startProfiling(gpu);
  assert.throws(() => startProfiling(gpu), /already running/);
  const querySet = gpu.device.createQuerySet({ type: "timestamp", count: 2 });
  const x = uploadBuffer(gpu, new Float32Array(4));
  const batch = new ComputeBatch(gpu).dispatch(spin(x, 4, 1));
  assert.throws(
    () => batch.submit({ querySet, beginIndex: 0, endIndex: 1 }),
    /cannot be taken while a profiler runs/,
  );
  assert.deepEqual(await profiler.finish(), []);
  await assert.rejects(profiler.finish(), /already finished/);
  assert.throws(() => summariseProfile([], { repeats: 0 }), /positive integer/);
  querySet.destroy();
  x.destroy();
});

Deno.test("bench/nn/profile.ts: the 0.8M anchor's step and sampling batch, every dispatch counted", async () => {
  if (!gpu.hasTimestamps) return;
  const { profileAnchors, formatAnchorProfile } = await import("../bench/nn/profile.ts");
  const [p] = await profileAnchors({ small: true });
  assert.equal(p.anchor, "0.8M");
  for (
    const [rows, count, ms] of [
      [p.stepByKernel, p.stepDispatches, p.stepProfiledMs],
      [p.stepByDispatch, p.stepDispatches, p.stepProfiledMs],
      [p.genByKernel, p.genDispatches, p.genProfiledMs],
    ] as const
  ) {
    assert.equal(rows.reduce((s, r) => s + r.count, 0), count);
    assert.ok(Math.abs(rows.reduce((s, r) => s + r.totalMs, 0) - ms) < 1e-6 * ms);
  }
  assert.ok(p.stepByKernel.some((r) => r.label.startsWith("optim_adamw")));
  assert.ok(p.genByKernel.some((r) => r.label.startsWith("sample_row")));
  assert.match(formatAnchorProfile(p, 5), /training step B=4 T=32/);
});
