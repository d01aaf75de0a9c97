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
 * Renders a Vega-Lite spec to a standalone SVG document string.
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
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
