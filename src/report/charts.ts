/**
 * Vega-Lite spec builders for the charts runs report: lines of a measure against a parameter,
 * one series per colour value, optionally one panel per facet value.
 *
 * Specs are plain JSON with the data inlined, so a spec file renders on its own (vega-embed,
 * the Vega editor, Jupyter's Vega-Lite renderer) and {@linkcode renderSvg} turns it into SVG.
 *
 * @module
 */
import type { TopLevelSpec } from "vega-lite";
import type { Row } from "./table.ts";

/** The `$schema` of every spec built here. */
export const VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json";

/** A data field shown on an axis or legend. */
export interface FieldRef {
  /** Column name. */
  field: string;
  /** Axis or legend title (defaults to the field name). */
  title?: string;
}

/** Options of {@linkcode lineChartSpec}. */
export interface LineChartOptions {
  /** Chart title. */
  title: string;
  /** The rows to plot. */
  data: readonly Row[];
  /** Quantitative x field. */
  x: FieldRef;
  /** Quantitative y field. */
  y: FieldRef;
  /** One line per value of this field (treated as nominal). */
  color?: FieldRef;
  /** The colour field's values in legend order (default: Vega-Lite's sorted order). */
  colorOrder?: readonly string[];
  /** One panel per value of this field, side by side. */
  facet?: FieldRef;
  /** A shaded band between two fields (e.g. min and max over trials), per series. */
  band?: { lower: string; upper: string };
  /** Adds a dashed y = x reference line over the range of the x field. */
  diagonal?: boolean;
  /** Draws a point at each data point on top of the lines. */
  points?: boolean;
  /** y scale domain; by default Vega-Lite picks one (with `zero: false`). */
  yDomain?: [number, number];
  /** Panel width and height in pixels. */
  width?: number;
  /** Panel height in pixels. */
  height?: number;
}

/**
 * A line chart spec: `y` against `x`, a line per `color` value, a panel per `facet` value,
 * optional band and y = x line. The y = x line is drawn from the x field itself (x, x) so that it
 * stays inside each facet panel without a second data source.
 *
 * @example
 * ```ts
 * const spec = lineChartSpec({
 *   title: "acceptance", data: rows,
 *   x: { field: "kl_before" }, y: { field: "acceptance_mean" }, color: { field: "lambda" },
 * });
 * ```
 */
export function lineChartSpec(o: LineChartOptions): TopLevelSpec {
  const x = { field: o.x.field, type: "quantitative", title: o.x.title ?? o.x.field };
  const yScale = o.yDomain ? { domain: o.yDomain, zero: false } : { zero: false };
  const y = {
    field: o.y.field,
    type: "quantitative",
    title: o.y.title ?? o.y.field,
    scale: yScale,
  };
  const color = o.color
    ? {
      color: {
        field: o.color.field,
        type: "nominal",
        title: o.color.title ?? o.color.field,
        ...(o.colorOrder ? { scale: { domain: [...o.colorOrder] } } : {}),
      },
    }
    : {};
  const layers: Record<string, unknown>[] = [];
  // The line layer comes first so that the legend takes its (opaque) symbols.
  layers.push({ mark: { type: "line", point: o.points ?? false }, encoding: { x, y, ...color } });
  if (o.band) {
    layers.push({
      mark: { type: "area", opacity: 0.15 },
      encoding: {
        x,
        y: { field: o.band.lower, type: "quantitative", scale: yScale, title: y.title },
        y2: { field: o.band.upper },
        ...color,
      },
    });
  }
  if (o.diagonal) {
    layers.push({
      mark: { type: "line", color: "gray", strokeDash: [4, 4] },
      encoding: { x, y: { field: o.x.field, type: "quantitative", title: y.title } },
    });
  }
  const size = { width: o.width ?? 220, height: o.height ?? 180 };
  const base = { $schema: VEGA_LITE_SCHEMA, title: o.title, data: { values: [...o.data] } };
  const spec = o.facet
    ? {
      ...base,
      facet: { column: { field: o.facet.field, type: "nominal", title: o.facet.title ?? null } },
      spec: { ...size, layer: layers },
    }
    : { ...base, ...size, layer: layers };
  // Assembled from parts, which Vega-Lite's union types cannot follow; vl.compile checks it (tests).
  return spec as unknown as TopLevelSpec;
}
