// Drawings in the page. The codec (stroke data <-> strokes) is the node's own, packages/model/src/drawing.ts,
// linked here as drawing-codec.ts so the browser loads the same file without a bundler; this file draws
// the strokes element by element (no markup is parsed).
import { COLOURS, HEIGHT, SIZES, WIDTH, type Stroke } from "./drawing-codec.js";

export { COLOURS, decodeDrawing, DRAWING_PREFIX, encodeDrawing, HEIGHT, looksLikeDrawing, MAX_CHARS, simplify, SIZES, WIDTH, type Stroke } from "./drawing-codec.js";

const SVG = "http://www.w3.org/2000/svg";

/** An <svg> of the strokes, built element by element (no markup is parsed). */
export function drawingElement(strokes: readonly Stroke[], label: string): SVGSVGElement {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  svg.classList.add("drawing");
  for (const s of strokes) svg.append(strokeElement(s));
  return svg;
}

export function strokeElement(s: Stroke): SVGElement {
  const el = document.createElementNS(SVG, s.points.length === 2 ? "circle" : "polyline");
  if (s.points.length === 2) {
    el.setAttribute("cx", String(s.points[0]));
    el.setAttribute("cy", String(s.points[1]));
    el.setAttribute("r", String(SIZES[s.size]! / 2));
    el.setAttribute("fill", COLOURS[s.colour]!);
  } else {
    el.setAttribute("points", s.points.join(" "));
    el.setAttribute("fill", "none");
    el.setAttribute("stroke", COLOURS[s.colour]!);
    el.setAttribute("stroke-width", String(SIZES[s.size]!));
    el.setAttribute("stroke-linecap", "round");
    el.setAttribute("stroke-linejoin", "round");
  }
  return el;
}
