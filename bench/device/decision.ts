/**
 * What a device-run verdict rule returns: the figures it read (with units and the file each came
 * from), its decision, and the exact edits it asks for. Every rule of bench/device/rules*.ts is a
 * pure function from parsed bench JSON ({@link Input}) to one {@link Decision}, so that a rule can
 * be tested on synthetic files and a new rule is one more function.
 *
 * @example
 * ```ts
 * const d = cannotDecide("defer", "deferred split-K bound", ["bench/transformer_defer0.json: not found"]);
 * d.status; // "cannot-decide"
 * ```
 *
 * @module
 */

/** One figure a rule used. */
export interface Figure {
  /** What was measured ("29M training step, auto"). */
  name: string;
  /** The value (NaN when a figure is absent from an otherwise usable file). */
  value: number;
  /** Its unit ("ms", "µs per decode step", "% of copy"). */
  unit: string;
  /** The file it came from, as found under the folders given. */
  file: string;
  /** A short verdict on this figure alone ("pass", "fused 12% slower"). */
  note?: string;
}

/** One edit to the source that a decision asks for. */
export interface Edit {
  /** Repository path. */
  file: string;
  /** The constant or expression to change. */
  constant: string;
  /** Its value now (as written in the source), or "?" when it could not be read. */
  from: string;
  /** Its new value. */
  to: string;
}

/**
 * The outcome of one rule: `change` (apply `edits`), `no-change` (the defaults stand),
 * `cannot-decide` (`missing` says what file or figure is absent or untrustworthy), or `info`
 * (a summary that decides nothing, such as the profile).
 */
export type DecisionStatus = "change" | "no-change" | "cannot-decide" | "info";

/** One rule's verdict. */
export interface Decision {
  /** Short id of the rule ("row-kernels", "skinny-decode", ...). */
  rule: string;
  /** The rule in one line. */
  title: string;
  /** See {@link DecisionStatus}. */
  status: DecisionStatus;
  /** The figures it used. */
  figures: Figure[];
  /** The decision in words (one or a few sentences). */
  decision: string;
  /** Source edits to make (empty unless `status` is "change"). */
  edits: Edit[];
  /** What is missing or untrustworthy (only for "cannot-decide"). */
  missing: string[];
  /** Things to check before acting (odd controls, CPU adapter, recomputed tilings). */
  cautions: string[];
}

/**
 * A parsed bench file as a rule receives it: its data and where it was found, or why it cannot
 * be used (not found, unreadable, or in a format that predates the rule).
 */
export type Input<T> = { path: string; data: T } | { path: string; problem: string };

/** Whether `x` holds data. */
export function has<T>(x: Input<T>): x is { path: string; data: T } {
  return "data" in x;
}

/** The "cannot decide" record of `rule`, naming what is missing. */
export function cannotDecide(
  rule: string,
  title: string,
  missing: string[],
  figures: Figure[] = [],
  cautions: string[] = [],
): Decision {
  return {
    rule,
    title,
    status: "cannot-decide",
    figures,
    decision: `cannot decide: ${missing.join("; ")}`,
    edits: [],
    missing,
    cautions,
  };
}

/** "path: problem" for each unusable input (empty when all hold data). */
export function problems(...inputs: Input<unknown>[]): string[] {
  return inputs.filter((x) => !has(x)).map((x) =>
    `${x.path}: ${(x as { problem: string }).problem}`
  );
}

/** A figure for ms values (rounded in text output only). */
export function fig(
  name: string,
  value: number,
  unit: string,
  file: string,
  note?: string,
): Figure {
  return note === undefined ? { name, value, unit, file } : { name, value, unit, file, note };
}

/** `a` relative to `b` as a signed percentage ("+12%", "−3%"). */
export function pct(a: number, b: number): string {
  const p = (a / b - 1) * 100;
  return `${p >= 0 ? "+" : "−"}${Math.abs(p).toFixed(Math.abs(p) < 10 ? 1 : 0)}%`;
}
