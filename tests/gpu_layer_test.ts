// The GPU layer on whatever adapter this machine has (llvmpipe in CI): device facts, the pipeline
// cache, one-pass batching with uniforms, 2-D grids past the per-dimension limit, batched readback
// and timestamp timing.
import assert from "node:assert/strict";
import {
  ComputeBatch,
  copyKernel,
  createGpu,
  getGpu,
  GpuBatchError,
  GpuUnavailableError,
  grid,
  type Kernel,
  pipelineCache,
  readBuffers,
  timeBatches,
  uploadBuffer,
  writeBuffer,
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

Deno.test("readBuffers refuses misaligned, out-of-range and negative regions instead of reading zeros", async () => {
  const x = uploadBuffer(gpu, Float32Array.from({ length: 64 }, (_, i) => i + 1), "x");
  for (
    const [request, message] of [
      [{ offset: 2, size: 4 }, /offset 2 .*multiple of 4/],
      [{ size: 6 }, /size 6 .*multiple of 4/],
      [{ offset: 200, size: 100 }, /bytes 200\.\.300 .*256-byte buffer 'x'/],
      [{ offset: 512 }, /offset 512 .*256-byte buffer 'x'/],
      [{ offset: -4 }, /offset -4/],
      [{ size: -8 }, /size -8/],
    ] as const
  ) {
    await assert.rejects(readBuffers(gpu, [{ buffer: x, ...request }]), (e: unknown) => {
      assert.ok(e instanceof RangeError, `${JSON.stringify(request)}: ${e}`);
      assert.match(e.message, message);
      return true;
    });
  }
  // Empty regions and an empty list are fine: nothing to copy, nothing to wait for.
  const [none, tail] = await readBuffers(gpu, [{ buffer: x, size: 0 }, { buffer: x, offset: 256 }]);
  assert.equal(none.byteLength, 0);
  assert.equal(tail.byteLength, 0);
  assert.deepEqual(await readBuffers(gpu, []), []);
  const [last] = await readBuffers(gpu, [{ buffer: x, offset: 252 }]);
  assert.deepEqual([...new Float32Array(last)], [64]);
  x.destroy();
});

Deno.test("uniform blocks of batches submitted back to back never see each other's values", async () => {
  // The arena is shared across batches and grows (destroying the old one) when a batch needs more:
  // 1, 400 (> 64 KiB of 256-byte slots: a new arena while the first batch may still be queued),
  // 3, then 1000 dispatches, with no wait in between.
  const n = 64;
  const x = uploadBuffer(gpu, new Float32Array(n), "x");
  let expected = 0;
  for (const [count, value] of [[1, 1], [400, 0.5], [3, 2], [1000, 0.25]] as const) {
    const b = new ComputeBatch(gpu);
    for (let i = 0; i < count; i++) {
      b.dispatch({ kernel: addKernel, bindings: [x, params(n, value)], workgroups: [1] });
      expected += value;
    }
    b.submit();
  }
  const out = new Float32Array((await readBuffers(gpu, [{ buffer: x }]))[0]);
  assert.ok(out.every((v) => v === expected), `every element should be ${expected}, got ${out[0]}`);
  x.destroy();
});

Deno.test("a submitted ComputeBatch refuses further copies as it refuses dispatches", () => {
  const x = uploadBuffer(gpu, new Float32Array(4), "x");
  const b = new ComputeBatch(gpu);
  b.submit();
  assert.throws(() => b.copy(x, 0, x, 0, 4), /already submitted/);
  x.destroy();
});

Deno.test("timeBatches: repeats must be a positive integer; more than one query set's worth works", async () => {
  const n = 64;
  const x = uploadBuffer(gpu, new Float32Array(n), "x");
  const record = (b: ComputeBatch) => {
    b.dispatch({ kernel: addKernel, bindings: [x, params(n, 1)], workgroups: [1] });
  };
  for (const options of [{ repeats: 0 }, { repeats: 2.5 }, { repeats: -1 }, { warmup: -1 }]) {
    await assert.rejects(timeBatches(gpu, record, options), (e: unknown) => {
      assert.ok(e instanceof RangeError, `${JSON.stringify(options)}: ${e}`);
      assert.match(e.message, /(repeats|warmup) must be/);
      return true;
    });
  }
  // A query set holds at most 4,096 timestamps (2,048 repeats): more repeats must still be timed.
  const t = await timeBatches(gpu, record, { warmup: 0, repeats: 2100 });
  assert.equal(t.samplesMs.length, 2100);
  if (t.method === "gpu-timestamps") {
    assert.ok(t.samplesMs.every((s) => Number.isFinite(s) && s >= 0));
    assert.ok(t.samplesMs.slice(2048).some((s) => s > 0), "the second query set was read");
  }
  x.destroy();
});

Deno.test("pipeline cache refuses two different kernels under one name instead of reusing the first", () => {
  // The cache keys shader modules by name; a generated variant that forgot to change its name
  // used to get the first variant's compiled code silently.
  const cache = pipelineCache(gpu.device);
  const a: Kernel = { name: "test_same_name", code: addKernel.code };
  const b: Kernel = { name: "test_same_name", code: addKernel.code.replace("x[i] + ", "x[i] - ") };
  cache.get(a);
  cache.get({ ...a }); // same name, same code: fine
  assert.throws(() => cache.get(b), /two kernels are named 'test_same_name' with different code/);
});

Deno.test("dispatch refuses empty or oversized uniform blocks (WebGPU would drop the whole batch)", () => {
  const x = uploadBuffer(gpu, new Float32Array(4), "x");
  const max = gpu.limits.maxUniformBufferBindingSize;
  for (
    const [block, message] of [
      [new Uint32Array(0), /uniform binding 1 is empty/],
      [
        new Uint8Array(max + 4),
        new RegExp(`uniform binding 1 has ${max + 4} bytes, over .*${max}`),
      ],
    ] as const
  ) {
    const b = new ComputeBatch(gpu);
    assert.throws(
      () => b.dispatch({ kernel: addKernel, bindings: [x, block], workgroups: [1] }),
      (e: unknown) => {
        assert.ok(e instanceof RangeError, String(e));
        assert.match(e.message, /^test_add: /);
        assert.match(e.message, message);
        return true;
      },
    );
    assert.equal(b.length, 0);
  }
  x.destroy();
});

Deno.test("writeBuffer refuses misaligned or out-of-range writes instead of dropping them", async () => {
  const x = uploadBuffer(gpu, new Float32Array(4), "x"); // 16 bytes
  for (
    const [data, offset, message] of [
      [new Float32Array(1), 2, /offset 2 .*multiple of 4/],
      [new Float32Array(4), 4, /bytes 4\.\.20 .*16-byte buffer 'x'/],
      [new Float32Array(1), -4, /offset -4/],
    ] as const
  ) {
    assert.throws(() => writeBuffer(gpu, x, data, offset), (e: unknown) => {
      assert.ok(e instanceof RangeError, String(e));
      assert.match(e.message, message);
      return true;
    });
  }
  writeBuffer(gpu, x, new Float32Array([7, 8]), 8);
  writeBuffer(gpu, x, new Uint8Array([1, 0, 0]), 0); // padded to 4 bytes
  const out = new Uint32Array((await readBuffers(gpu, [{ buffer: x }]))[0]);
  assert.equal(out[0], 1);
  assert.deepEqual([...new Float32Array(out.buffer).slice(2)], [7, 8]);
  x.destroy();
});

Deno.test("a batch WebGPU rejects fails the next readback, naming its kernels; later work is clean", async () => {
  const n = 64;
  const gone = uploadBuffer(gpu, new Float32Array(n), "gone");
  gone.destroy();
  const ok = uploadBuffer(gpu, new Float32Array(n).fill(1), "ok");
  const bad = new ComputeBatch(gpu);
  bad.dispatch({ kernel: addKernel, bindings: [gone, params(n, 1)], workgroups: [1] });
  bad.submit();
  await assert.rejects(readBuffers(gpu, [{ buffer: ok }]), (e: unknown) => {
    assert.ok(e instanceof GpuBatchError);
    assert.match(e.message, /^WebGPU rejected the batch \(kernels test_add\): /);
    return true;
  });
  // The error was reported once; the device and later batches are unaffected.
  const good = new ComputeBatch(gpu);
  good.dispatch({ kernel: addKernel, bindings: [ok, params(n, 2)], workgroups: [1] });
  good.submit();
  const [bytes] = await readBuffers(gpu, [{ buffer: ok }]);
  assert.ok(new Float32Array(bytes).every((v) => v === 3));
  ok.destroy();
});

Deno.test("getGpu() replaces a lost device with a new one", async () => {
  // In its own process: other test modules hold the shared device and must keep it.
  const device = new URL("../src/gpu/device.ts", import.meta.url).href;
  const code = `
    import { getGpu } from "${device}";
    const own = await getGpu();
    if (await getGpu() !== own) throw new Error("not shared while alive");
    own.device.destroy();
    await own.device.lost;
    await new Promise((r) => setTimeout(r, 0));
    const fresh = await getGpu();
    if (fresh === own) throw new Error("the lost device was returned again");
    const b = fresh.device.createBuffer({ size: 4, usage: GPUBufferUsage.STORAGE });
    b.destroy();
    console.log("replaced");`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal(text.trim(), "replaced");
});
