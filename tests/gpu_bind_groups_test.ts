// The bind group cache: identical resources give the identical bind group, any difference (buffer,
// offset, size, pipeline) gives another; uniform contents rewritten in a cached slot are seen by
// the kernel; the cache is bounded; and a repeated training step reaches a steady state in which
// it creates no bind group at all (the host cost the cache exists to remove).
import assert from "node:assert/strict";
import {
  BindGroupCache,
  bindGroupCache,
  ComputeBatch,
  getGpu,
  type Kernel,
  pipelineCache,
  readBuffers,
  uploadBuffer,
} from "../src/gpu/mod.ts";
import { AdamW } from "../src/autograd/mod.ts";
import { initTensors, readAll, tensor, tidy } from "../src/tensor/mod.ts";
import { modelConfig } from "../src/nn/config.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { Rng } from "../src/util/rng.ts";

const gpu = await getGpu();

const addKernel: Kernel = {
  name: "test_bind_groups_add",
  code: `
struct Params { count: u32, value: f32 }
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  if (g.x < params.count) { x[g.x] = x[g.x] + params.value; }
}`,
};

function params(count: number, value: number): Uint32Array {
  const p = new Uint32Array(2);
  p[0] = count;
  new Float32Array(p.buffer)[1] = value;
  return p;
}

function storage(bytes: number): GPUBuffer {
  return gpu.device.createBuffer({
    size: bytes,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.UNIFORM,
  });
}

Deno.test("the same resources give the same bind group; any difference gives another", () => {
  const cache = new BindGroupCache(gpu.device);
  const pipeline = pipelineCache(gpu.device).get(addKernel);
  const a = storage(1024), b = storage(1024), u = storage(512);
  const entries = (x: GPUBuffer, offset = 0, size?: number): GPUBindGroupEntry[] => [
    { binding: 0, resource: { buffer: x } },
    { binding: 1, resource: { buffer: u, offset, size: size ?? 16 } },
  ];
  const first = cache.get(pipeline, entries(a));
  assert.equal(cache.get(pipeline, entries(a)), first);
  assert.notEqual(cache.get(pipeline, entries(b)), first, "another buffer");
  assert.notEqual(cache.get(pipeline, entries(a, 256)), first, "another offset");
  assert.notEqual(cache.get(pipeline, entries(a, 0, 32)), first, "another size");
  assert.deepEqual(cache.stats, { hits: 1, misses: 4, size: 4 });
  for (const x of [a, b, u]) x.destroy();
});

Deno.test("a full cache empties itself instead of growing past its bound", () => {
  const cache = new BindGroupCache(gpu.device, 2);
  const pipeline = pipelineCache(gpu.device).get(addKernel);
  const u = storage(256);
  const bufs = [storage(64), storage(64), storage(64)];
  for (const x of bufs) {
    cache.get(pipeline, [
      { binding: 0, resource: { buffer: x } },
      { binding: 1, resource: { buffer: u, offset: 0, size: 8 } },
    ]);
  }
  assert.ok(cache.stats.size <= 2, `size ${cache.stats.size}`);
  assert.equal(cache.stats.misses, 3);
  for (const x of [...bufs, u]) x.destroy();
});

Deno.test("a cached bind group sees the uniform values written for each batch", async () => {
  const n = 100;
  const x = uploadBuffer(gpu, new Float32Array(n));
  const cache = bindGroupCache(gpu.device);
  let expected = 0;
  for (let i = 1; i <= 4; i++) {
    const before = cache.stats;
    new ComputeBatch(gpu)
      .dispatch({ kernel: addKernel, bindings: [x, params(n, i)], workgroups: [2] })
      .submit();
    expected += i;
    const [got] = await readBuffers(gpu, [{ buffer: x }]);
    const values = new Float32Array(got);
    assert.ok(values.every((v) => v === expected), `batch ${i}: ${values[0]} != ${expected}`);
    // same buffer, same arena slot: from the second batch on, the bind group is found again
    if (i > 1) assert.equal(cache.stats.hits - before.hits, 1, `batch ${i} did not reuse`);
  }
  x.destroy();
});

Deno.test("a repeated training step creates no bind group once the pool has settled", async () => {
  await initTensors();
  const config = modelConfig("tiny", 18);
  const model = Transformer.init(config, { seed: 1 });
  const opt = new AdamW(model.parameters(), { lr: 1e-3, maxGradNorm: 1 });
  const rng = new Rng(5);
  const ids = () => Int32Array.from({ length: 2 * 8 }, () => rng.int(config.vocabSize));
  const tokens = tensor(ids(), [2, 8]);
  const targets = tensor(ids(), [2, 8]);
  const cache = bindGroupCache(gpu.device);
  const missesPerStep: number[] = [];
  try {
    for (let step = 0; step < 24; step++) {
      const before = cache.stats.misses;
      tidy(() => {
        model.loss(tokens, targets).backward();
        opt.step();
        opt.zeroGrad();
      });
      await readAll([opt.gradNorm]); // submits the step
      missesPerStep.push(cache.stats.misses - before);
    }
  } finally {
    opt.dispose();
    model.dispose();
    tokens.dispose();
    targets.dispose();
  }
  console.log(`bind groups created per step: ${missesPerStep.join(" ")}`);
  assert.ok(missesPerStep[0] > 0, "the first step must create its bind groups");
  assert.deepEqual(missesPerStep.slice(-4), [0, 0, 0, 0]);
});
