import { describe, expect, it } from "vitest";
import { decodeDrawing, drawingSvg, encodeDrawing } from "./drawing.js";

describe("drawings as data", () => {
  it("round-trips strokes and draws them as an SVG made of numbers only", () => {
    const text = encodeDrawing([
      { colour: 1, size: 2, points: [10, 20, 30, 40, 50, 60] },
      { colour: 5, size: 0, points: [100, 100] },
    ]);
    const strokes = decodeDrawing(text)!;
    expect(strokes).toEqual([
      { colour: 1, size: 2, points: [10, 20, 30, 40, 50, 60] },
      { colour: 5, size: 0, points: [100, 100] },
    ]);
    const svg = drawingSvg(strokes);
    expect(svg).toContain('<polyline points="10 20 30 40 50 60" fill="none" stroke="#d7263d" stroke-width="14"');
    expect(svg).toContain('<circle cx="100" cy="100" r="1.5" fill="#2e86de"/>');
  });

  it("refuses text that is not stroke data", () => {
    expect(decodeDrawing("[drawing] pigeon-drawing/1 12<script>")).toBeUndefined();
    expect(decodeDrawing("[drawing] pigeon-drawing/1 \"/><a href=x>")).toBeUndefined();
    expect(decodeDrawing("hello")).toBeUndefined();
  });
});
