import assert from "node:assert/strict";
import * as vl from "vega-lite";
import { parseCommandArgs, UsageError } from "../src/cli/command.ts";
import { command, configFromValues, simulate, summaryText } from "../src/cli/commands/simulate.ts";
import { readCsvTable } from "../src/report/mod.ts";
import { FIGURE2_COLUMNS, runFigure2, summarizeFigure2 } from "../src/sim/mod.ts";

const SMALL = [
  "--vocab",
  "64",
  "--trials",
  "4",
  "--levels",
  "3",
  "--lambdas",
  "0.5,1,2",
  "--quiet",
];

async function run(args: string[]): Promise<number> {
  return await command.run(parseCommandArgs(command, args));
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("simulate writes a complete run folder whose CSV is byte-identical for the same seed", async () => {
  await withTempDir(async (root) => {
    assert.equal(await run([...SMALL, "--out", `${root}/a`, "--budgets", "0.9"]), 0);
    assert.equal(await run([...SMALL, "--out", `${root}/b`, "--budgets", "0.9"]), 0);
    assert.equal(await run([...SMALL, "--out", `${root}/c`, "--budgets", "0.9", "--seed", "1"]), 0);
    const names = [];
    for await (const e of Deno.readDir(`${root}/a`)) names.push(e.name);
    const charts = ["acceptance_vs_kl", "kl_after_vs_before", "kl_ratio_vs_kl"];
    assert.deepEqual(
      names.sort(),
      [
        "config.json",
        "index.html",
        "results.csv",
        "results.json",
        ...charts.flatMap((c) => [`${c}.svg`, `${c}.vl.json`]),
      ]
        .sort(),
    );
    const csv = (d: string) => Deno.readFile(`${root}/${d}/results.csv`);
    assert.deepEqual(await csv("a"), await csv("b"));
    assert.notDeepEqual(await csv("a"), await csv("c"));

    const table = await readCsvTable(`${root}/a/results.csv`);
    assert.deepEqual(table.columnNames(), [...FIGURE2_COLUMNS]);
    assert.equal(table.numRows(), 3 * (3 + 1) * 3); // noise models × (λs + budgets) × levels
    const json = JSON.parse(await Deno.readTextFile(`${root}/a/results.json`));
    assert.deepEqual(json, table.objects());

    const config = JSON.parse(await Deno.readTextFile(`${root}/a/config.json`));
    assert.equal(config.config.vocab, 64);
    assert.deepEqual(config.config.lambdas, [0.5, 1, 2]);
    assert.deepEqual(config.config.budgets, [0.9]);
    assert.equal(typeof config.versions.vega, "string");
    assert.equal(typeof config.versions.deno, "string");

    for (const c of charts) {
      const spec = JSON.parse(await Deno.readTextFile(`${root}/a/${c}.vl.json`));
      vl.compile(spec);
      const svg = await Deno.readTextFile(`${root}/a/${c}.svg`);
      assert.ok(svg.startsWith("<svg"));
      // One line per λ in each of the three noise-model panels (+ the y = x line per panel).
      const lines = svg.match(/<g class="mark-line role-mark/g)?.length;
      assert.equal(lines, c === "kl_after_vs_before" ? 3 * 3 + 3 : 3 * 3, c);
    }
    const html = await Deno.readTextFile(`${root}/a/index.html`);
    assert.equal(html.match(/<svg/g)?.length, 3);
    assert.equal(
      html.match(/<tr>/g)?.length,
      1 + table.numRows() + Object.keys(config.config).length,
    );
  });
});

Deno.test("simulate refuses a non-empty folder unless --force, and leaves other files alone", async () => {
  await withTempDir(async (root) => {
    await Deno.writeTextFile(`${root}/notes.txt`, "mine");
    await assert.rejects(run([...SMALL, "--out", root]), (e) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, /already exists and is not empty \(pass --force/);
      return true;
    });
    assert.equal(await run([...SMALL, "--out", root, "--force"]), 0);
    assert.equal(await Deno.readTextFile(`${root}/notes.txt`), "mine");
    await Deno.stat(`${root}/config.json`);
  });
});

Deno.test("an aborted run stops early and leaves no config.json and no temp files", async () => {
  await withTempDir(async (root) => {
    const config = configFromValues(parseCommandArgs(command, SMALL));
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 0);
    await assert.rejects(
      simulate({ ...config, trials: 100_000 }, root, { quiet: true, signal: controller.signal }),
    );
    const names = [];
    for await (const e of Deno.readDir(root)) names.push(e.name);
    assert.deepEqual(names, []);
  });
});

Deno.test("bad option values are one-sentence usage errors", () => {
  const cases: [string[], RegExp][] = [
    [["--trials", "0"], /--trials must be >= 1/],
    [["--trials", "2.5"], /--trials must be an integer/],
    [["--vocab", "abc"], /--vocab must be an integer/],
    [["--vocab", "1"], /--vocab must be >= 2/],
    [["--concentration", "0"], /--concentration must be > 0/],
    [
      ["--noise", "logit,gauss"],
      /--noise entries must be among logit, mixture, temperature; got 'gauss'/,
    ],
    [["--noise", "logit,logit"], /--noise lists a model twice/],
    [["--lambdas", "1,x"], /--lambdas must be a list of numbers, 'x' is not a number/],
    [["--lambdas", "0"], /--lambdas must be > 0/],
    [["--budgets", "1.2"], /--budgets must be <= 1/],
    [["--budgets", ""], /--budgets must be a comma-separated list of numbers, got ''/],
    [["--budgets", " "], /--budgets must be a comma-separated list of numbers/],
    [["--lambdas", "1,,2"], /--lambdas must be a comma-separated list of numbers, got '1,,2'/],
    [["--noise", ""], /--noise entries must be among .*; got ''/],
    [["--concentration", "Infinity"], /--concentration must be a number, got 'Infinity'/],
    [["--seed", "1e3"], /--seed must be an integer, got '1e3'/],
    [["--kl-max=-1"], /--kl-max must be > 0/],
    [["--levels", "0"], /--levels must be >= 1/],
    [["--seed=-3"], /--seed must be >= 0/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => configFromValues(parseCommandArgs(command, args)), (e) => {
      assert.ok(e instanceof UsageError, `${args}: ${e}`);
      assert.match(e.message, message);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  }
  assert.throws(() => parseCommandArgs(command, ["--tirals", "3"]), UsageError);
});

Deno.test("the summary quotes lambda = 1 when swept, else the first lambda, and the rows' numbers", () => {
  const config = configFromValues(parseCommandArgs(command, SMALL));
  const rows = runFigure2({ ...config, budgets: [0.9] });
  const s = summarizeFigure2(rows, 1);
  const lines = summaryText(rows);
  assert.equal(lines.length, 2);
  assert.ok(lines[0].startsWith("At λ = 1 "));
  assert.ok(
    lines[0].includes(s.acceptanceRange[0].toFixed(4)) &&
      lines[0].includes(s.acceptanceRange[1].toFixed(4)),
  );
  assert.ok(lines[1].includes(`median ${s.medianKlRatio.toFixed(4)}`));
  const rows2 = runFigure2({ ...config, lambdas: [2, 0.5] });
  assert.ok(summaryText(rows2)[0].startsWith("At λ = 2 "));
  assert.deepEqual(summaryText(runFigure2({ ...config, lambdas: [], budgets: [0.9] })), []);
});

Deno.test("the defaults parse to the documented configuration", () => {
  const c = configFromValues(parseCommandArgs(command, []));
  assert.deepEqual(c.noise, ["logit", "mixture", "temperature"]);
  assert.ok(c.lambdas.includes(1));
  assert.ok(c.klMax >= 0.025);
  assert.deepEqual(c.budgets, []);
});

Deno.test("an unreachable KL range is a usage error with advice", async () => {
  await withTempDir(async (root) => {
    // Near-uniform targets: temperature noise cannot move far from them.
    const args = [
      "--vocab",
      "8",
      "--concentration",
      "1000",
      "--trials",
      "2",
      "--noise",
      "temperature",
      "--kl-max",
      "0.5",
      "--quiet",
      "--out",
      root,
    ];
    await assert.rejects(run(args), (e) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, /temperature noise cannot reach KL .* lower --kl-max/);
      return true;
    });
  });
});

Deno.test("--out that is empty, blank or an existing file is a usage error (exit 2), not a run", async () => {
  await withTempDir(async (root) => {
    const file = `${root}/notes.txt`;
    await Deno.writeTextFile(file, "mine");
    for (
      const [out, message] of [
        ["", /--out must name a folder, got ''/],
        ["  ", /--out must name a folder, got ' {2}'/],
        [file, /output path '.*notes\.txt' exists and is not a folder/],
      ] as const
    ) {
      await assert.rejects(run([...SMALL, "--out", out]), (e) => {
        assert.ok(e instanceof UsageError, `--out '${out}': ${e}`);
        assert.match(e.message, message);
        return true;
      });
    }
    assert.equal(await Deno.readTextFile(file), "mine");
    // Nothing was written in the working directory's runs/ folder either.
    const names = [];
    for await (const e of Deno.readDir(root)) names.push(e.name);
    assert.deepEqual(names, ["notes.txt"]);
  });
});

Deno.test("KL levels too small to calibrate in float64 are a usage error, not a NaN row", () => {
  for (
    const args of [["--kl-max", "1e-16"], ["--kl-max", "1e-300"], ["--kl-max=1e-5", "--levels=100"]]
  ) {
    assert.throws(() => configFromValues(parseCommandArgs(command, [...SMALL, ...args])), (e) => {
      assert.ok(e instanceof UsageError, `${args}: ${e}`);
      assert.match(e.message, /smallest KL level .* must be >= 1e-6/);
      return true;
    });
  }
  // The boundary itself is accepted.
  const c = configFromValues(
    parseCommandArgs(command, [...SMALL, "--kl-max=1e-3", "--levels=1000"]),
  );
  assert.equal(c.klMax / c.levels, 1e-6);
});

Deno.test("a sweep too large to hold in memory is a usage error up front, not a crash hours later", () => {
  // Every (noise model, λ or budget, level, trial) keeps ten float64 measurements until the end:
  // 3 × 5 × 1000 × 100,000 of them would need ~120 GB.
  const args = ["--trials", "100000", "--levels", "1000"];
  assert.throws(() => configFromValues(parseCommandArgs(command, args)), (e) => {
    assert.ok(e instanceof UsageError, String(e));
    assert.match(e.message, /1\.5e\+9 measurements .* at most 1e\+7; lower --trials or --levels/);
    return true;
  });
  // The README's larger example stays well inside.
  const ok = ["--lambdas", "1", "--budgets", "0.9,0.95", "--trials", "500"];
  assert.equal(configFromValues(parseCommandArgs(command, ok)).trials, 500);
});

Deno.test("a run that fails before writing anything leaves no empty run folder behind", async () => {
  await withTempDir(async (root) => {
    const out = `${root}/new/run`;
    const args = ["--vocab", "8", "--concentration", "1000", "--trials", "2", "--noise"];
    await assert.rejects(
      run([...args, "temperature", "--kl-max", "0.5", "--quiet", "--out", out]),
      UsageError,
    );
    await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
    // A folder that existed before the run is the user's: it stays.
    await Deno.mkdir(`${root}/mine`);
    await assert.rejects(
      run([...args, "temperature", "--kl-max", "0.5", "--quiet", "--out", `${root}/mine`]),
      UsageError,
    );
    assert.ok((await Deno.stat(`${root}/mine`)).isDirectory);
  });
});
