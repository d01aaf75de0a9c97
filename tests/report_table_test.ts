import assert from "node:assert/strict";
import { Rng } from "../src/util/rng.ts";
import {
  csvToTable,
  prepareRunDir,
  readCsvTable,
  rowsToTable,
  RunDirNotEmptyError,
  tableRows,
  tableToCsv,
  tableToHtml,
  timestamp,
  writeFileAtomic,
  writeTable,
} from "../src/report/mod.ts";

/** Random rows with floats of every magnitude and sign, integers, strings needing quotes, nulls. */
function randomRows(rng: Rng, n: number) {
  const words = ["plain", "with,comma", 'with "quote"', "λ = 1", "multi\nline"];
  return Array.from({ length: n }, (_, i) => ({
    id: i,
    x: (rng.uniform() - 0.5) * 10 ** (rng.int(40) - 20),
    tiny: rng.uniform() * 1e-300,
    whole: rng.int(1_000_000) - 500_000,
    label: words[rng.int(words.length)],
    maybe: rng.uniform() < 0.3 ? null : rng.uniform(),
  }));
}

Deno.test("CSV round-trips float64 values, strings and nulls through arquero", () => {
  const rng = new Rng(11);
  const rows = randomRows(rng, 200);
  const back = tableRows(csvToTable(tableToCsv(rowsToTable(rows))));
  assert.equal(back.length, rows.length);
  rows.forEach((row, i) => {
    for (const [k, v] of Object.entries(row)) {
      assert.ok(Object.is(back[i][k], v), `row ${i} column ${k}: wrote ${v}, read ${back[i][k]}`);
    }
  });
});

Deno.test("rowsToTable keeps the given column order and refuses missing columns and NaN", () => {
  const t = rowsToTable([{ b: 1, a: 2, c: 3 }], ["c", "a"]);
  assert.deepEqual(t.columnNames(), ["c", "a"]);
  assert.throws(() => rowsToTable([{ a: 1 }, { b: 2 }], ["a"]), /row 1 has no column 'a'/);
  assert.throws(() => rowsToTable([{ a: 1 }, { a: NaN }]), /row 1 column 'a' is NaN/);
});

Deno.test("writeTable writes CSV and JSON that read back to the same rows, with no temp files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const rows = randomRows(new Rng(3), 50);
    const paths = await writeTable(dir, "results", rowsToTable(rows));
    assert.deepEqual(paths, { csv: `${dir}/results.csv`, json: `${dir}/results.json` });
    const fromCsv = tableRows(await readCsvTable(paths.csv));
    const fromJson = JSON.parse(await Deno.readTextFile(paths.json!));
    assert.deepEqual(fromCsv, rows);
    assert.deepEqual(fromJson, rows);
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.sort(), ["results.csv", "results.json"]);
    await assert.rejects(writeTable(dir, "../escape", rowsToTable(rows)), /not a plain file name/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeFileAtomic replaces a file whole and cleans up when the rename fails", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/a.txt`;
    await writeFileAtomic(path, "first");
    await writeFileAtomic(path, new TextEncoder().encode("second"));
    assert.equal(await Deno.readTextFile(path), "second");
    // Renaming onto a non-empty folder fails: the temporary file must not be left behind.
    await Deno.mkdir(`${dir}/sub`);
    await Deno.writeTextFile(`${dir}/sub/x`, "x");
    await assert.rejects(writeFileAtomic(`${dir}/sub`, "data"));
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.sort(), ["a.txt", "sub"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("prepareRunDir creates, accepts empty, refuses non-empty unless forced", async () => {
  const root = await Deno.makeTempDir();
  try {
    const dir = `${root}/a/b`;
    await prepareRunDir(dir);
    assert.ok((await Deno.stat(dir)).isDirectory);
    await prepareRunDir(dir); // empty: fine
    await Deno.writeTextFile(`${dir}/keep.txt`, "keep");
    await assert.rejects(prepareRunDir(dir), RunDirNotEmptyError);
    await prepareRunDir(dir, { force: true });
    assert.equal(await Deno.readTextFile(`${dir}/keep.txt`), "keep");
    await assert.rejects(prepareRunDir(`${dir}/keep.txt`), /not a folder/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("timestamp is the UTC time as YYYYMMDD-HHMMSS", () => {
  const rng = new Rng(5);
  for (let i = 0; i < 20; i++) {
    const d = new Date(Math.floor(rng.uniform() * 4e12));
    const expected = [
      d.getUTCFullYear(),
      d.getUTCMonth() + 1,
      d.getUTCDate(),
    ].map((v, j) => String(v).padStart(j === 0 ? 4 : 2, "0")).join("") + "-" +
      [d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()]
        .map((v) => String(v).padStart(2, "0")).join("");
    assert.equal(timestamp(d), expected);
  }
});

Deno.test("tableToHtml shows every row and escapes text", () => {
  const rows = [{ a: 0.123456789, b: "<b>&" }, { a: 2, b: "x" }];
  const html = tableToHtml(rowsToTable(rows), { digits: 3 });
  assert.equal(html.match(/<tr>/g)?.length, 3); // header + 2 rows
  assert.ok(html.includes("0.123"));
  assert.ok(!html.includes("<b>&"));
});
