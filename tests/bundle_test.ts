// Compile-readiness: `deno compile` needs the network to fetch its runtime, so CI proves the same
// property another way. The CLI is bundled into one file, which is then run from an unrelated
// folder: any kernel or asset read from next to the source (instead of imported) would fail here.
import assert from "node:assert/strict";
import { join } from "node:path";

const decoder = new TextDecoder();

async function deno(args: string[], cwd?: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

Deno.test("the bundled CLI runs from another folder", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jackpot-bundle-" });
  try {
    const bundle = join(dir, "jackpot.js");
    const built = await deno(["bundle", "--quiet", "--output", bundle, "src/cli/main.ts"]);
    assert.equal(built.code, 0, built.stderr);
    const elsewhere = await Deno.makeTempDir({ prefix: "jackpot-elsewhere-" });
    try {
      const version = await deno(["run", "--allow-all", bundle, "--version"], elsewhere);
      assert.equal(version.code, 0, version.stderr);
      assert.match(version.stdout, /^jackpot \d/);
      const info = await deno(["run", "--allow-all", bundle, "info", "--json"], elsewhere);
      assert.equal(info.code, 0, info.stderr);
      assert.ok(JSON.parse(info.stdout).limits.maxBufferSize > 0);
      const bad = await deno(["run", "--allow-all", bundle, "no-such-command"], elsewhere);
      assert.equal(bad.code, 2);
      // simulate pulls in arquero, vega and vega-lite: they must be inside the bundle.
      const sim = await deno([
        "run",
        "--allow-all",
        bundle,
        "simulate",
        "--trials",
        "3",
        "--levels",
        "2",
        "--quiet",
        "--out",
        "run",
      ], elsewhere);
      assert.equal(sim.code, 0, sim.stderr);
      const svg = await Deno.readTextFile(join(elsewhere, "run", "acceptance_vs_kl.svg"));
      assert.match(svg, /^<svg/);
      assert.ok((await Deno.readTextFile(join(elsewhere, "run", "results.csv"))).includes("\n"));
    } finally {
      await Deno.remove(elsewhere, { recursive: true });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
