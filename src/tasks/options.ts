/**
 * Typed, validated task options. A task declares its options once; values may come as numbers and
 * booleans (from code or config.json) or as strings (from `--task arithmetic:maxDigits=3`).
 *
 * @module
 */
import type { TaskOptions } from "./task.ts";

/** One option a task accepts. */
export type OptionDecl =
  | { type: "int"; default: number; min: number; max: number; description: string }
  | { type: "boolean"; default: boolean; description: string }
  | { type: "string"; default: string; description: string; check?: (v: string) => string | null };

/** Resolved option values, typed by the declarations. */
export type Resolved<D extends Record<string, OptionDecl>> = {
  [K in keyof D]: D[K] extends { type: "int" } ? number
    : D[K] extends { type: "boolean" } ? boolean
    : string;
};

/**
 * Checks `given` against `decls` and fills defaults. Unknown keys and bad values throw an Error
 * naming the task, the option and the allowed values.
 */
export function resolveOptions<D extends Record<string, OptionDecl>>(
  task: string,
  decls: D,
  given: TaskOptions,
): Resolved<D> {
  const out: Record<string, string | number | boolean> = {};
  for (const key of Object.keys(given)) {
    if (!(key in decls)) {
      throw new Error(
        `task '${task}' has no option '${key}'; its options are: ${Object.keys(decls).join(", ")}`,
      );
    }
  }
  for (const [key, decl] of Object.entries(decls)) {
    const raw = given[key];
    if (raw === undefined) {
      out[key] = decl.default;
      continue;
    }
    const where = `task '${task}' option '${key}'`;
    if (decl.type === "int") {
      const v = typeof raw === "string" && raw.trim() !== "" ? Number(raw) : raw;
      if (typeof v !== "number" || !Number.isInteger(v) || v < decl.min || v > decl.max) {
        throw new Error(
          `${where} must be an integer in [${decl.min}, ${decl.max}], got ${JSON.stringify(raw)}`,
        );
      }
      out[key] = v;
    } else if (decl.type === "boolean") {
      const v = raw === "true" ? true : raw === "false" ? false : raw;
      if (typeof v !== "boolean") {
        throw new Error(`${where} must be true or false, got ${JSON.stringify(raw)}`);
      }
      out[key] = v;
    } else {
      if (typeof raw !== "string") throw new Error(`${where} must be a string, got ${raw}`);
      const problem = decl.check?.(raw);
      if (problem) throw new Error(`${where}: ${problem}`);
      out[key] = raw;
    }
  }
  return out as Resolved<D>;
}

/** One line per option, for help texts: `name (type, default D): description`. */
export function describeOptions(decls: Record<string, OptionDecl>): string[] {
  return Object.entries(decls).map(([k, d]) => {
    const range = d.type === "int" ? ` in [${d.min}, ${d.max}]` : "";
    return `${k} (${d.type}${range}, default ${JSON.stringify(d.default)}): ${d.description}`;
  });
}
