/**
 * Vega-Lite specs rendered to SVG without a browser.
 *
 * Vega's headless view (`renderer: "none"`) runs the dataflow and serialises the scenegraph to SVG
 * text; no canvas or DOM is needed, so this works the same in tests, the CLI and notebooks.
 * Text widths are estimated (no font metrics), which only affects label placement slightly.
 *
 * @module
 */
import * as vega from "vega";
import * as vl from "vega-lite";
import type { TopLevelSpec } from "vega-lite";

export type { TopLevelSpec };

/** The Vega-Lite version used to compile specs (also the `$schema` major version). */
export const VEGA_LITE_VERSION: string = vl.version;

/** The Vega version used to render. */
export const VEGA_VERSION: string = vega.version;

/**
 * Renders a Vega-Lite spec to a standalone SVG document string. Rejects with one sentence when
 * Vega fails to draw it (its errors are not printed).
 *
 * @example
 * ```ts
 * const svg = await renderSvg({
 *   data: { values: [{ x: 0, y: 1 }, { x: 1, y: 0 }] },
 *   mark: "line",
 *   encoding: { x: { field: "x", type: "quantitative" }, y: { field: "y", type: "quantitative" } },
 * });
 * ```
 */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const compiled = vl.compile(spec).spec;
  // Vega reports a failed dataflow step (e.g. d3 ticks over a degenerate range) by logging the
  // error with its stack and still returning an SVG; collect errors and reject instead, so a
  // command says one sentence and never writes a broken chart. Warnings keep Vega's own output.
  const errors: unknown[] = [];
  const logger = vega.logger(vega.Warn, undefined, (method, level, args) => {
    if (level === "ERROR") errors.push(args[0]);
    else console[method](level, ...args);
  });
  const view = new vega.View(vega.parse(compiled), { renderer: "none", logger });
  try {
    let svg = "";
    try {
      svg = await view.toSVG();
    } catch (e) {
      // After a logged dataflow error the scenegraph is incomplete and serialising it fails too;
      // the logged error is the one worth reporting.
      if (errors.length === 0) throw e;
    }
    if (errors.length > 0) {
      const e = errors[0];
      const what = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      const title = typeof spec.title === "string" ? ` '${spec.title}'` : "";
      throw new Error(`Vega could not draw the chart${title}: ${what.split("\n")[0]}`);
    }
    return svg;
  } finally {
    view.finalize();
  }
}
