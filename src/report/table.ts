/**
 * Result tables: arquero tables written as CSV and JSON, read back from CSV.
 *
 * CSV is the durable format (diffable, loads anywhere); numbers are written with JavaScript's
 * shortest round-trip formatting, so `readCsvTable(writeTable(t))` gives back the same float64
 * values. JSON is written as an array of row objects, which is what Vega-Lite's `data.values` and
 * most notebooks expect.
 *
 * @module
 */
import * as aq from "arquero";
import type { ColumnTable } from "arquero";
import { writeFileAtomic, writeJsonAtomic } from "./files.ts";

export type { ColumnTable };

/** A plain row: column name to value. */
export type Row = Record<string, string | number | boolean | null>;

/**
 * Builds an arquero table from row objects. With `columns`, the table has exactly those columns in
 * that order (a row lacking one is an error, not a silent null).
 *
 * @example
 * ```ts
 * const t = rowsToTable([{ lambda: 1, z: 0.93 }], ["lambda", "z"]);
 * ```
 */
export function rowsToTable(rows: readonly object[], columns?: readonly string[]): ColumnTable {
  const names = columns ?? (rows.length > 0 ? Object.keys(rows[0]) : []);
  const data: Record<string, unknown[]> = {};
  for (const name of names) data[name] = [];
  rows.forEach((row, i) => {
    const record = row as Record<string, unknown>;
    for (const name of names) {
      if (!(name in record)) throw new RangeError(`row ${i} has no column '${name}'`);
      const v = record[name];
      if (typeof v === "number" && Number.isNaN(v)) {
        throw new RangeError(`row ${i} column '${name}' is NaN`);
      }
      data[name].push(v);
    }
  });
  return aq.table(data);
}

/** Table rows as plain objects (for Vega-Lite `data.values` or JSON). */
export function tableRows(table: ColumnTable): Row[] {
  return table.objects() as Row[];
}

/** The CSV text of a table (header row, `,` separator, empty cell for null). */
export function tableToCsv(table: ColumnTable): string {
  return aq.toCSV(table);
}

/** Paths written by {@linkcode writeTable}. */
export interface WrittenTable {
  /** `<dir>/<name>.csv` */
  csv: string;
  /** `<dir>/<name>.json`, when JSON was asked for. */
  json?: string;
}

/**
 * Writes `<dir>/<name>.csv` and (unless `json: false`) `<dir>/<name>.json`, each atomically.
 *
 * @example
 * ```ts
 * await writeTable("runs/x", "results", rowsToTable(rows));
 * ```
 */
export async function writeTable(
  dir: string,
  name: string,
  table: ColumnTable,
  { json = true }: { json?: boolean } = {},
): Promise<WrittenTable> {
  if (!/^[\w.-]+$/.test(name)) {
    throw new RangeError(`table name '${name}' is not a plain file name`);
  }
  const csv = `${dir}/${name}.csv`;
  await writeFileAtomic(csv, tableToCsv(table));
  if (!json) return { csv };
  const jsonPath = `${dir}/${name}.json`;
  await writeJsonAtomic(jsonPath, tableRows(table));
  return { csv, json: jsonPath };
}

/** Parses CSV text into a table (numbers and booleans typed, empty cells null). */
export function csvToTable(text: string): ColumnTable {
  return aq.fromCSV(text);
}

/** Reads a CSV file written by {@linkcode writeTable}. */
export async function readCsvTable(path: string): Promise<ColumnTable> {
  return csvToTable(await Deno.readTextFile(path));
}

/**
 * An HTML `<table>` of the given columns, numbers shown with `digits` significant digits (the CSV
 * keeps full precision).
 */
export function tableToHtml(table: ColumnTable, { digits = 4 }: { digits?: number } = {}): string {
  const format: Record<string, (v: unknown) => string> = {};
  for (const name of table.columnNames()) {
    format[name] = (v) =>
      typeof v === "number" && !Number.isInteger(v) ? v.toPrecision(digits) : String(v ?? "");
  }
  return aq.toHTML(table, { format });
}
