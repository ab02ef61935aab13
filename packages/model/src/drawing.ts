// One codec for the node (the e-mail gateway and XMPP clients see a drawing as an image) and the web app,
// which loads this very file (linked as packages/app/web/src/drawing-codec.ts: no bundler). So it imports
// nothing and touches no DOM.
// Drawings travel as a message whose text is compact stroke data, never markup: the receiver checks
// every character against a strict pattern and draws lines itself, from numbers and a fixed palette.
// Nothing in a drawing can be script, a link or a colour we did not choose.
//   "[drawing] pigeon-drawing/1 " then strokes separated by spaces; one stroke is a colour digit
//   (0-7), a width digit (0-2) and its points, 4 characters each (x and y, 2 base64url digits apiece).

export const DRAWING_PREFIX = "[drawing] pigeon-drawing/1 ";
export const WIDTH = 600;
export const HEIGHT = 400;
/** A message's text may be 8,000 characters (MAX_BODY_CHARS); the drawing is all of it. */
export const MAX_CHARS = 8000;
export const COLOURS = ["#1b1b1b", "#d7263d", "#f46036", "#c99a00", "#1b998b", "#2e86de", "#7b2cbf", "#7f5539"] as const;
export const SIZES = [3, 7, 14] as const;

export interface Stroke {
  colour: number;
  size: number;
  /** x0, y0, x1, y1, ... in 0..WIDTH, 0..HEIGHT. */
  points: number[];
}

const DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const STROKE = /^[0-7][0-2](?:[A-Za-z0-9_-]{4})+$/;

function two(n: number): string {
  const v = Math.max(0, Math.min(4095, Math.round(n)));
  return DIGITS[v >> 6]! + DIGITS[v & 63]!;
}

function value(s: string, i: number): number {
  return (DIGITS.indexOf(s[i]!) << 6) | DIGITS.indexOf(s[i + 1]!);
}

/** The message text of a drawing. */
export function encodeDrawing(strokes: readonly Stroke[]): string {
  const parts = strokes
    .filter((s) => s.points.length >= 2)
    .map((s) => {
      let out = `${s.colour & 7}${Math.min(2, Math.max(0, s.size))}`;
      for (let i = 0; i + 1 < s.points.length; i += 2) out += two(Math.min(WIDTH, s.points[i]!)) + two(Math.min(HEIGHT, s.points[i + 1]!));
      return out;
    });
  return DRAWING_PREFIX + parts.join(" ");
}

/** Whether a message's text is meant as a drawing (it may still be a broken one). */
export function looksLikeDrawing(text: string): boolean {
  return text.startsWith(DRAWING_PREFIX);
}

/** The strokes of a drawing's text, or undefined if it is not one, is broken or is too big. */
export function decodeDrawing(text: string): Stroke[] | undefined {
  if (!looksLikeDrawing(text) || text.length > MAX_CHARS) return undefined;
  const rest = text.slice(DRAWING_PREFIX.length);
  if (rest === "") return [];
  const strokes: Stroke[] = [];
  for (const part of rest.split(" ")) {
    if (!STROKE.test(part)) return undefined;
    const points: number[] = [];
    for (let i = 2; i < part.length; i += 4) points.push(Math.min(WIDTH, value(part, i)), Math.min(HEIGHT, value(part, i + 2)));
    strokes.push({ colour: Number(part[0]), size: Number(part[1]), points });
  }
  return strokes;
}

/** Drops points closer than `min` to the last one kept (a finger sends many), so drawings stay small. */
export function simplify(points: readonly number[], min = 3): number[] {
  const out: number[] = [];
  for (let i = 0; i + 1 < points.length; i += 2) {
    const x = Math.round(points[i]!);
    const y = Math.round(points[i + 1]!);
    const n = out.length;
    if (n >= 2 && Math.abs(x - out[n - 2]!) < min && Math.abs(y - out[n - 1]!) < min && i + 2 < points.length) continue;
    out.push(x, y);
  }
  return out;
}

function num(n: number): string {
  // Only numbers reach the markup: every value is a checked integer from decodeDrawing.
  return String(Math.round(n));
}

/** An SVG image of the strokes, as text: built from numbers and the fixed palette only, never from input text. */
export function drawingSvg(strokes: readonly Stroke[]): string {
  const parts = strokes.map((s) => {
    const colour = COLOURS[s.colour & 7]!;
    const size = SIZES[Math.min(2, Math.max(0, s.size))]!;
    if (s.points.length === 2) {
      return `<circle cx="${num(s.points[0]!)}" cy="${num(s.points[1]!)}" r="${size / 2}" fill="${colour}"/>`;
    }
    const points = s.points.map(num).join(" ");
    return `<polyline points="${points}" fill="none" stroke="${colour}" stroke-width="${size}" stroke-linecap="round" stroke-linejoin="round"/>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}"><rect width="100%" height="100%" fill="#ffffff"/>${parts.join("")}</svg>`;
}
