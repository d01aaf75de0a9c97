/**
 * Executes every notebook in notebooks/ with Jupyter's nbconvert and the Deno kernel, into a
 * temporary folder (never in place), and fails on the first cell error, printing it.
 *
 * Without `jupyter nbconvert` the execution tests are ignored with a message, unless
 * JACKPOT_REQUIRE_JUPYTER=1 (CI) where that is a failure. The Deno kernelspec is written into a
 * temporary JUPYTER_PATH pointing at the deno running this test, so a stale or missing
 * `deno jupyter --install` on the machine does not matter.
 */
import assert from "node:assert/strict";

const NOTEBOOK_DIR = new URL("../notebooks/", import.meta.url);
const REQUIRE = Deno.env.get("JACKPOT_REQUIRE_JUPYTER") === "1";
const decoder = new TextDecoder();

interface Cell {
  cell_type: string;
  source: string[] | string;
  outputs?: { output_type: string; ename?: string; evalue?: string; traceback?: string[] }[];
  execution_count?: number | null;
}

async function notebooks(): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(NOTEBOOK_DIR)) {
    if (e.isFile && e.name.endsWith(".ipynb")) names.push(e.name);
  }
  return names.sort();
}

async function readCells(path: string | URL): Promise<Cell[]> {
  return JSON.parse(await Deno.readTextFile(path)).cells as Cell[];
}

/** `jupyter nbconvert --version`, or null when Jupyter or nbconvert is missing. */
async function nbconvertVersion(): Promise<string | null> {
  try {
    const out = await new Deno.Command("jupyter", {
      args: ["nbconvert", "--version"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return out.success ? decoder.decode(out.stdout).trim() : null;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

const names = await notebooks();
const version = await nbconvertVersion();
const missing = version === null;
if (missing && !REQUIRE) {
  console.warn(
    "notebooks_test: `jupyter nbconvert` not found, notebook execution tests ignored " +
      "(apt-get install jupyter-nbconvert python3-nbclient python3-ipykernel; " +
      "set JACKPOT_REQUIRE_JUPYTER=1 to make this a failure)",
  );
}

Deno.test("there are notebooks, and they are committed with their outputs cleared", async () => {
  assert.ok(names.length > 0, "no notebooks found in notebooks/");
  for (const name of names) {
    for (const [i, cell] of (await readCells(new URL(name, NOTEBOOK_DIR))).entries()) {
      if (cell.cell_type !== "code") continue;
      assert.deepEqual(
        cell.outputs,
        [],
        `${name} cell ${i} has outputs: clear them before committing`,
      );
      assert.equal(cell.execution_count, null, `${name} cell ${i} has an execution count`);
    }
  }
});

Deno.test({
  name: "Jupyter is installed (JACKPOT_REQUIRE_JUPYTER=1)",
  ignore: !REQUIRE,
  fn() {
    assert.ok(!missing, "JACKPOT_REQUIRE_JUPYTER=1 but `jupyter nbconvert` was not found");
  },
});

for (const name of names) {
  Deno.test({
    name: `notebook ${name} executes without errors`,
    ignore: missing,
    async fn() {
      const tmp = await Deno.makeTempDir({ prefix: "jackpot-nb-" });
      try {
        const kernelDir = `${tmp}/jupyter/kernels/deno`;
        await Deno.mkdir(kernelDir, { recursive: true });
        await Deno.writeTextFile(
          `${kernelDir}/kernel.json`,
          JSON.stringify({
            argv: [Deno.execPath(), "jupyter", "--kernel", "--conn", "{connection_file}"],
            display_name: "Deno",
            language: "typescript",
          }),
        );
        const source = new URL(name, NOTEBOOK_DIR).pathname;
        const out = await new Deno.Command("jupyter", {
          args: [
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--ExecutePreprocessor.timeout=600",
            "--output-dir",
            `${tmp}/out`,
            source,
          ],
          env: { JUPYTER_PATH: `${tmp}/jupyter` },
          stdout: "piped",
          stderr: "piped",
        }).output();
        const stderr = decoder.decode(out.stderr);
        if (!out.success) {
          // nbconvert's CellExecutionError names the cell and carries the kernel's traceback.
          const at = stderr.search(/CellExecutionError|An error occurred while executing/);
          const report = at >= 0 ? stderr.slice(at) : stderr.slice(-4000);
          throw new Error(`${name} failed to execute:\n${report.slice(0, 6000)}`);
        }
        const cells = await readCells(`${tmp}/out/${name}`);
        cells.forEach((cell, i) => {
          if (cell.cell_type !== "code") return;
          assert.notEqual(cell.execution_count, null, `${name} cell ${i} did not run`);
          for (const o of cell.outputs ?? []) {
            assert.notEqual(o.output_type, "error", `${name} cell ${i}: ${o.ename}: ${o.evalue}`);
          }
        });
      } finally {
        await Deno.remove(tmp, { recursive: true });
      }
    },
  });
}
