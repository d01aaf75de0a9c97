// The GPU layer on whatever adapter this machine has (llvmpipe in CI): device facts, the pipeline
// cache, one-pass batching with uniforms, 2-D grids past the per-dimension limit, batched readback
// and timestamp timing.
import assert from "node:assert/strict";
import {
  ComputeBatch,
  copyKernel,
  createGpu,
  getGpu,
  GpuUnavailableError,
  grid,
  type Kernel,
  pipelineCache,
  readBuffers,
  timeBatches,
  uploadBuffer,
} from "../src/gpu/mod.ts";
import { median } from "../src/util/stats.ts";

const gpu = await getGpu();

// Adds `params.value` to every element; one invocation per element, flat index over a 2-D grid.
const addKernel: Kernel = {
  name: "test_add",
  code: `
override WG: u32 = 64u;
struct Params { count: u32, value: f32 }
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < params.count) { x[i] = x[i] + params.value; }
}`,
};

function params(count: number, value: number): Uint32Array {
  const p = new Uint32Array(2);
  p[0] = count;
  new Float32Array(p.buffer)[1] = value;
  return p;
}

Deno.test("device reports the adapter, its features and the full limits it requested", () => {
  assert.ok(gpu.adapter.description.length > 0 || gpu.adapter.vendor.length > 0);
  assert.equal(typeof gpu.isFallback, "boolean");
  assert.ok(gpu.limits.maxStorageBufferBindingSize >= 128 * 1024 * 1024);
  assert.ok(gpu.limits.maxComputeWorkgroupsPerDimension >= 65535);
  assert.equal(gpu.hasTimestamps, gpu.features.includes("timestamp-query"));
  assert.equal(gpu.hasF16, gpu.features.includes("shader-f16"));
  // Every limit the device reports equals the device's own limit object (requested = offered).
  assert.equal(gpu.limits.maxBufferSize, gpu.device.limits.maxBufferSize);
});

Deno.test("a runtime without WebGPU, or without an adapter, gets one clear sentence", async () => {
  await assert.rejects(createGpu({ provider: null }), (e: unknown) => {
    assert.ok(e instanceof GpuUnavailableError);
    assert.match(e.message, /no WebGPU/);
    return true;
  });
  const noAdapter = { requestAdapter: () => Promise.resolve(null) } as unknown as GPU;
  await assert.rejects(createGpu({ provider: noAdapter }), (e: unknown) => {
    assert.ok(e instanceof GpuUnavailableError);
    assert.match(e.message, /No WebGPU adapter was found/);
    assert.equal(e.message.split(". ").length, 1, "one sentence");
    return true;
  });
});

Deno.test("pipeline cache compiles once per kernel and constants", () => {
  const cache = pipelineCache(gpu.device);
  const a = cache.get(addKernel, { WG: 64 });
  const b = cache.get(addKernel, { WG: 64 });
  const c = cache.get(addKernel, { WG: 128 });
  assert.equal(a, b);
  assert.notEqual(a, c);
  assert.equal(cache, pipelineCache(gpu.device));
});

Deno.test("one batch runs many dispatches in order, each with its own uniforms", async () => {
  const n = 1000;
  const x = uploadBuffer(gpu, new Float32Array(n).fill(1), "x");
  const batch = new ComputeBatch(gpu);
  let expected = 1;
  for (let i = 1; i <= 100; i++) {
    batch.dispatch({
      kernel: addKernel,
      constants: { WG: 64 },
      bindings: [x, params(n, i)],
      workgroups: [Math.ceil(n / 64)],
    });
    expected += i;
  }
  assert.equal(batch.length, 100);
  batch.submit();
  assert.throws(() => batch.submit(), /already submitted/);
  const [bytes] = await readBuffers(gpu, [{ buffer: x }]);
  const out = new Float32Array(bytes);
  assert.ok(out.every((v) => v === expected), `every element should be ${expected}`);
  x.destroy();
});

Deno.test("grid() splits workgroup counts past the per-dimension limit and covers every element", async () => {
  assert.deepEqual(grid(10), [10, 1]);
  const [gx, gy] = grid(70001);
  assert.ok(gx <= 65535 && gx * gy >= 70001 && gy === 2);
  const n = 70001; // one invocation per workgroup: needs a 2-D grid
  const x = uploadBuffer(gpu, new Float32Array(n), "x");
  const batch = new ComputeBatch(gpu);
  batch.dispatch({
    kernel: addKernel,
    constants: { WG: 1 },
    bindings: [x, params(n, 2.5)],
    workgroups: grid(n),
  });
  batch.submit();
  const out = new Float32Array((await readBuffers(gpu, [{ buffer: x }]))[0]);
  assert.ok(out.every((v) => v === 2.5));
  x.destroy();
  assert.throws(
    () =>
      new ComputeBatch(gpu).dispatch({
        kernel: addKernel,
        bindings: [],
        workgroups: [70000],
      }),
    /workgroup count 70000 is outside/,
  );
});

Deno.test("readBuffers reads several regions with one wait; copy kernel moves every vec4", async () => {
  const n = 4 * 777;
  const data = Float32Array.from({ length: n }, (_, i) => i * 0.5 - 3);
  const src = uploadBuffer(gpu, data, "src");
  const dst = uploadBuffer(gpu, new Float32Array(n), "dst");
  const batch = new ComputeBatch(gpu);
  batch.dispatch({
    kernel: copyKernel,
    bindings: [src, dst, new Uint32Array([n / 4])],
    workgroups: grid(Math.ceil(n / 4 / 256)),
  });
  batch.submit();
  const [whole, part] = await readBuffers(gpu, [{ buffer: dst }, {
    buffer: dst,
    offset: 16,
    size: 8,
  }]);
  assert.deepEqual(new Float32Array(whole), data);
  assert.deepEqual(new Float32Array(part), data.slice(4, 6));
  src.destroy();
  dst.destroy();
});

Deno.test("timeBatches reports GPU-timestamp medians (wall clock only without the feature)", async () => {
  const n = 4096;
  const x = uploadBuffer(gpu, new Float32Array(n), "x");
  const t = await timeBatches(gpu, (b) => {
    b.dispatch({ kernel: addKernel, bindings: [x, params(n, 1)], workgroups: [n / 64] });
  }, { warmup: 1, repeats: 5 });
  assert.equal(t.samplesMs.length, 5);
  assert.equal(t.method, gpu.hasTimestamps ? "gpu-timestamps" : "wall-clock");
  assert.ok(t.samplesMs.every((s) => Number.isFinite(s) && s >= 0));
  assert.equal(t.medianMs, median(t.samplesMs));
  assert.ok(t.minMs <= t.medianMs && t.medianMs <= t.maxMs);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  x.destroy();
});
