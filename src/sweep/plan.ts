/**
 * Sweep plans: a grid of `jackpot rl` runs (axes × seeds) over shared base options, optionally
 * preceded by pre-training the two starting models once. A plan is plain JSON so that it can be
 * written by hand, stored next to its results (`plan.json`) and handed to a cluster scheduler, one
 * run per array index.
 *
 * Runs that differ only in their seed form a *group*; the sweep report aggregates each group over
 * its seeds (mean and confidence interval per iteration, final values, Welch and paired tests).
 *
 * @module
 */

/** Option values as the command line would give them: a string, or `true` for a switch. */
export type OptionValues = Record<string, string | boolean>;

/** One value of an axis: its label in run names and tables, and the options it sets. */
export interface AxisValue {
  /** Short label, e.g. `tis` or `64x`. */
  label: string;
  /** `jackpot rl` options this value sets (without `--`), e.g. `{ mode: "tis" }`. */
  options: OptionValues;
}

/** One dimension of the grid. */
export interface SweepAxis {
  /** Axis name, e.g. `mode` or `staleness`. */
  name: string;
  /** Its values, in the order tables and legends list them. */
  values: AxisValue[];
}

/** Options of `jackpot pretrain` for the models every run starts from (the task is the runs'). */
export interface PretrainStage {
  /** Pre-training of the policy, or absent to take `rl.policy` as given. */
  policy?: OptionValues;
  /** Pre-training of the rollout model, or absent to take `rl.actor` as given. */
  actor?: OptionValues;
}

/** A whole sweep, in canonical form (what {@link parseSweepPlan} returns and plan.json holds). */
export interface SweepPlan {
  /** Name, e.g. `fig4`. */
  name: string;
  /** What the sweep reproduces or asks, one or two sentences. */
  description: string;
  /** Base `jackpot rl` options of every run. */
  rl: OptionValues;
  /** Models trained once before the runs, or null. */
  pretrain: PretrainStage | null;
  /** The grid; every combination of one value per axis is a group. */
  axes: SweepAxis[];
  /** Seeds; every group runs once per seed. */
  seeds: number[];
  /** The group label other groups are compared against (e.g. `mode=jackpot`), or null. */
  baseline: string | null;
}

/** One run of a sweep. */
export interface SweepRun {
  /** Position in the plan's order (the scheduler's array index). */
  index: number;
  /** Folder name, e.g. `mode-tis_seed-2`. */
  id: string;
  /** The axis labels of its group, by axis name. */
  group: Record<string, string>;
  /** The group as one label, e.g. `mode=tis` (or `mode=tis staleness=8x`). */
  groupLabel: string;
  /** Its seed. */
  seed: number;
  /** Its `jackpot rl` options: base, then axis values, then the seed. */
  options: OptionValues;
}

/** A plan that cannot be run: the message names the field and the problem. */
export class SweepPlanError extends Error {
  /** @param message one sentence naming the field. */
  constructor(message: string) {
    super(message);
    this.name = "SweepPlanError";
  }
}

/** Options the sweep itself sets for every run; a plan may not. */
const MANAGED = ["out", "force", "quiet", "help", "seed"];

const isRecord = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x);

function optionValues(x: unknown, where: string): OptionValues {
  if (!isRecord(x)) throw new SweepPlanError(`${where} must be an object of option values`);
  const out: OptionValues = {};
  for (const [k, v] of Object.entries(x)) {
    if (k.startsWith("-")) {
      throw new SweepPlanError(`${where}: write option '${k}' without its dashes`);
    }
    if (MANAGED.includes(k)) {
      throw new SweepPlanError(
        `${where}: '${k}' is set by the sweep itself (${
          k === "seed" ? "use the plan's seeds" : "it manages run folders and output"
        })`,
      );
    }
    if (typeof v === "number" && Number.isFinite(v)) out[k] = String(v);
    else if (typeof v === "string" || v === true) out[k] = v;
    else if (v === false) continue; // a switch left off
    else {
      throw new SweepPlanError(
        `${where}.${k} must be a string, a finite number or a boolean, got ${JSON.stringify(v)}`,
      );
    }
  }
  return out;
}

const LABEL = /^[A-Za-z0-9][A-Za-z0-9.+-]*$/;

function axisOf(name: string, raw: unknown): SweepAxis {
  const where = `axes.${name}`;
  if (!LABEL.test(name)) {
    throw new SweepPlanError(`${where}: an axis name uses letters, digits, '.', '+' and '-'`);
  }
  let values: AxisValue[];
  if (Array.isArray(raw)) {
    // Shorthand: the axis is an option and each value its value ({"mode": ["tis", "jackpot"]}).
    values = raw.map((v, i) => {
      if (typeof v === "number" && Number.isFinite(v)) v = String(v);
      if (typeof v !== "string") {
        throw new SweepPlanError(`${where}[${i}] must be a string or a number`);
      }
      return { label: v, options: { [name]: v } };
    });
  } else if (isRecord(raw) && Array.isArray(raw.values)) {
    // Canonical values: { values: [{ label, options }] }.
    values = raw.values.map((v, i) => {
      if (!isRecord(v) || typeof v.label !== "string") {
        throw new SweepPlanError(`${where}.values[${i}] needs a string label and options`);
      }
      return { label: v.label, options: optionValues(v.options, `${where}.values[${i}].options`) };
    });
  } else if (isRecord(raw)) {
    // Labelled values that set several options ({"staleness": {"8x": {"prompts": 16, ...}}}).
    values = Object.entries(raw).map(([label, opts]) => ({
      label,
      options: optionValues(opts, `${where}.${label}`),
    }));
  } else {
    throw new SweepPlanError(
      `${where} must be a list of values or an object of labelled option sets`,
    );
  }
  if (values.length === 0) throw new SweepPlanError(`${where} has no values`);
  const seen = new Set<string>();
  for (const v of values) {
    if (!LABEL.test(v.label)) {
      throw new SweepPlanError(
        `${where}: label '${v.label}' must start with a letter or digit and use only letters, ` +
          "digits, '.', '+' and '-' (it names run folders)",
      );
    }
    if (seen.has(v.label)) throw new SweepPlanError(`${where}: label '${v.label}' repeats`);
    seen.add(v.label);
  }
  return { name, values };
}

/**
 * Reads a plan from parsed JSON, accepting shorthands, and returns it in canonical form.
 * Axes may be written `{"mode": ["tis", "jackpot"]}` (the axis is an option) or
 * `{"staleness": {"1x": {"prompts": 2}, "8x": {"prompts": 16}}}` (labelled option sets); option
 * values may be numbers. SweepPlanError names the first bad field.
 *
 * @example
 * ```ts
 * const plan = parseSweepPlan({
 *   name: "modes", rl: { iterations: 30 }, axes: { mode: ["tis", "jackpot"] }, seeds: [1, 2, 3],
 * });
 * expandSweep(plan).length; // 6
 * ```
 */
export function parseSweepPlan(raw: unknown): SweepPlan {
  if (!isRecord(raw)) throw new SweepPlanError("a sweep plan must be a JSON object");
  const known = ["name", "description", "rl", "pretrain", "axes", "seeds", "baseline"];
  for (const k of Object.keys(raw)) {
    if (!known.includes(k)) {
      throw new SweepPlanError(`unknown plan field '${k}' (the fields are ${known.join(", ")})`);
    }
  }
  if (typeof raw.name !== "string" || !LABEL.test(raw.name)) {
    throw new SweepPlanError("name must be a short label (letters, digits, '.', '+', '-')");
  }
  const rl = optionValues(raw.rl ?? {}, "rl");
  let pretrain: PretrainStage | null = null;
  if (raw.pretrain !== undefined && raw.pretrain !== null) {
    if (!isRecord(raw.pretrain)) throw new SweepPlanError("pretrain must be an object");
    pretrain = {};
    for (const [role, opts] of Object.entries(raw.pretrain)) {
      if (role !== "policy" && role !== "actor") {
        throw new SweepPlanError(`pretrain.${role}: only policy and actor are pre-trained`);
      }
      const o = optionValues(opts, `pretrain.${role}`);
      if ("task" in o) {
        throw new SweepPlanError(
          `pretrain.${role}.task: the models learn the runs' task (rl.task)`,
        );
      }
      if (role in rl) {
        throw new SweepPlanError(
          `rl.${role} and pretrain.${role} both set the ${role}: keep one`,
        );
      }
      pretrain[role] = o;
    }
  }
  const axesRaw = raw.axes ?? {};
  let axes: SweepAxis[];
  if (Array.isArray(axesRaw)) {
    // Canonical: [{ name, values: [{ label, options }] }] (what plan.json holds).
    axes = axesRaw.map((a, i) => {
      if (!isRecord(a) || typeof a.name !== "string") {
        throw new SweepPlanError(`axes[${i}] needs a name and values`);
      }
      return axisOf(a.name, { values: a.values });
    });
    const names = axes.map((a) => a.name);
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice !== undefined) throw new SweepPlanError(`axis ${twice} appears twice`);
  } else if (isRecord(axesRaw)) {
    axes = Object.entries(axesRaw).map(([n, v]) => axisOf(n, v));
  } else {
    throw new SweepPlanError("axes must be an object, axis name → values");
  }
  // Two axes setting one option would make the later silently win in some groups.
  const setBy = new Map<string, string>();
  for (const a of axes) {
    for (const v of a.values) {
      for (const k of Object.keys(v.options)) {
        const other = setBy.get(k);
        if (other !== undefined && other !== a.name) {
          throw new SweepPlanError(`axes ${other} and ${a.name} both set option '${k}'`);
        }
        setBy.set(k, a.name);
        if (pretrain && (k === "policy" || k === "actor") && pretrain[k]) {
          throw new SweepPlanError(`axis ${a.name} sets ${k}, which pretrain.${k} also sets`);
        }
      }
    }
  }
  const seeds = raw.seeds ?? [1];
  if (
    !Array.isArray(seeds) || seeds.length === 0 ||
    !seeds.every((s) => Number.isInteger(s) && s >= 0 && s < 2 ** 32)
  ) {
    throw new SweepPlanError("seeds must be a non-empty list of integers in [0, 2^32)");
  }
  if (new Set(seeds).size !== seeds.length) throw new SweepPlanError("seeds repeat");
  const plan: SweepPlan = {
    name: raw.name,
    description: typeof raw.description === "string" ? raw.description : "",
    rl,
    pretrain,
    axes,
    seeds: seeds as number[],
    baseline: null,
  };
  if (raw.baseline !== undefined && raw.baseline !== null) {
    const labels = groupLabels(plan);
    if (typeof raw.baseline !== "string" || !labels.includes(raw.baseline)) {
      throw new SweepPlanError(
        `baseline must be one of the groups: ${labels.join(", ")}; got ${
          JSON.stringify(raw.baseline)
        }`,
      );
    }
    plan.baseline = raw.baseline;
  }
  return plan;
}

function groups(plan: SweepPlan): Array<{ group: Record<string, string>; options: OptionValues }> {
  let out = [{ group: {} as Record<string, string>, options: {} as OptionValues }];
  for (const axis of plan.axes) {
    out = out.flatMap((g) =>
      axis.values.map((v) => ({
        group: { ...g.group, [axis.name]: v.label },
        options: { ...g.options, ...v.options },
      }))
    );
  }
  return out;
}

/** `mode=tis staleness=8x`: a group's axis labels in axis order (`all` for a grid without axes). */
export function groupLabelOf(group: Record<string, string>): string {
  const parts = Object.entries(group).map(([a, l]) => `${a}=${l}`);
  return parts.length === 0 ? "all" : parts.join(" ");
}

/** The plan's group labels, in run order. */
export function groupLabels(plan: SweepPlan): string[] {
  return groups(plan).map((g) => groupLabelOf(g.group));
}

/**
 * Every run of the plan: groups in axis order (the last axis varies fastest), each once per seed.
 * A run's options are the base options, overridden by its axis values, plus its seed.
 */
export function expandSweep(plan: SweepPlan): SweepRun[] {
  const runs: SweepRun[] = [];
  for (const g of groups(plan)) {
    for (const seed of plan.seeds) {
      const parts = [...Object.entries(g.group).map(([a, l]) => `${a}-${l}`), `seed-${seed}`];
      runs.push({
        index: runs.length,
        id: parts.join("_"),
        group: g.group,
        groupLabel: groupLabelOf(g.group),
        seed,
        options: { ...plan.rl, ...g.options, seed: String(seed) },
      });
    }
  }
  return runs;
}

/**
 * The command-line form of option values, `--name=value` (so that negative numbers parse) and
 * `--switch`.
 */
export function optionArgs(options: OptionValues): string[] {
  return Object.entries(options).map(([k, v]) => v === true ? `--${k}` : `--${k}=${v}`);
}

/**
 * Applies `key=value` overrides (the command line's `--set`) to the base options of every run:
 * the override also replaces what an axis would set, so that `--set iterations=3` shortens a
 * staleness sweep whose axis sets iterations. `true`/`false` turn switches on or off.
 */
export function withOverrides(plan: SweepPlan, overrides: OptionValues): SweepPlan {
  const off = (o: OptionValues) =>
    Object.fromEntries(Object.entries(o).filter(([k]) => !(k in overrides)));
  const on = Object.fromEntries(
    Object.entries(overrides).filter(([, v]) => v !== "false"),
  ) as OptionValues;
  for (const [k, v] of Object.entries(on)) if (v === "true") on[k] = true;
  for (const k of Object.keys(overrides)) {
    if (MANAGED.includes(k)) {
      throw new SweepPlanError(`--set ${k}: '${k}' is set by the sweep itself`);
    }
  }
  return {
    ...plan,
    rl: { ...off(plan.rl), ...on },
    axes: plan.axes.map((a) => ({
      ...a,
      values: a.values.map((v) => ({ ...v, options: off(v.options) })),
    })),
  };
}
