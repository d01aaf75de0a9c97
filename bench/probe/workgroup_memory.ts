/**
 * Probe: what a workgroup's memory costs at launch (WGSL zero-initialises `var<workgroup>`, and
 * naga may emit that as stores). Dispatches many workgroups that each touch a little of an
 * array of `words` u32 in workgroup memory, for several sizes and workgroup sizes, and prints the
 * median GPU time per workgroup.
 *
 *     deno run -A bench/probe/workgroup_memory.ts
 *
 * @module
 */
import { ComputeBatch } from "../../src/gpu/batch.ts";
import { createStorageBuffer } from "../../src/gpu/buffers.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { timeBatches } from "../../src/gpu/timing.ts";

const code = `
override WG: u32 = 256u;
override WORDS: u32 = 16u;
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
var<workgroup> big: array<u32, WORDS>;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x;
  if (lid == 0u) { big[w % WORDS] = w; }
  workgroupBarrier();
  if (lid == 0u) { out[w] = big[(w * 7u) % WORDS]; }
}`;

const gpu = await getGpu();
const groups = 65535 * 2;
const out = createStorageBuffer(gpu, groups * 4, "probe out");
console.log(`adapter: ${gpu.adapter.description}; ${groups} workgroups each`);
for (const wg of [64, 256, 1024]) {
  for (const words of [16, 512, 2048, 8192]) {
    const t = await timeBatches(gpu, (b: ComputeBatch) =>
      b.dispatch({
        kernel: { name: "probe_wgmem", code },
        constants: { WG: wg, WORDS: words },
        bindings: [out],
        workgroups: [65535, 2],
      }), { repeats: 5 });
    console.log(
      `WG ${String(wg).padStart(4)}  ${String(words * 4).padStart(6)} B  ` +
        `${t.medianMs.toFixed(3)} ms  ${(t.medianMs * 1e6 / groups).toFixed(1)} ns per workgroup`,
    );
  }
}
out.destroy();
