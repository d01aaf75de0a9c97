// The matmul benchmark runs every version end to end on tiny shapes, validates each result, and
// says why a version cannot run a shape instead of failing.
import assert from "node:assert/strict";
import { benchMatmul } from "../bench/matmul/main.ts";
import { MATMUL_VERSIONS } from "../bench/matmul/versions.ts";

Deno.test("matmul bench: every version runs or says why not, and every result checks", async () => {
  const rows = await benchMatmul({
    sizes: [
      { M: 36, N: 40, K: 1024 },
      { M: 33, N: 17, K: 20, transB: true },
      { M: 64, N: 64, K: 16, batchCount: 3, transA: true },
    ],
    repeats: 1,
  });
  assert.equal(rows.length, 3 * MATMUL_VERSIONS.length);
  for (const r of rows) {
    const where = `${r.version} ${r.M}×${r.N}×${r.K} ${r.layout} batch ${r.batch}`;
    if (r.skipped) {
      assert.ok(Number.isNaN(r.ms), where);
      continue;
    }
    assert.ok(r.ms > 0 && r.tflops > 0, `${where}: ${r.ms} ms`);
    assert.ok(r.maxRatio !== null && r.maxRatio <= 1, `${where}: err/bound ${r.maxRatio}`);
  }
  const skipped = (id: string, layout: string) =>
    rows.find((r) => r.version === id && r.layout === layout)?.skipped;
  assert.match(skipped("v3", "NT") ?? "", /plain A·B only/);
  assert.match(skipped("v5", "NT") ?? "", /not a multiple of 4/, "N = 17 rows are not whole vec4");
  assert.equal(skipped("auto", "NT"), undefined, "encodeMatmul runs any shape");
  await assert.rejects(() => benchMatmul({ versions: ["v99"] }), /unknown matmul version/);
});
