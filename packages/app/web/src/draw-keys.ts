// Drawing with the keyboard alone, for a child who cannot use a mouse or a finger (or a screen reader
// user): a visible pen moved with the arrow keys, put down and lifted with Space or Enter. The lines it
// makes are strokes like a finger's, so they travel in the same stroke data with the same size limit.
import { COLOURS, HEIGHT, strokeElement, WIDTH, type Stroke } from "./drawing.js";

/** Where the keyboard's pen is and the line it is drawing: kept by the screen, so a redraw keeps them. */
export interface KeyPen {
  cursor?: [number, number];
  /** The points of the line being drawn with the pen down (none when it is up). */
  pen?: number[];
}

const SVG = "http://www.w3.org/2000/svg";
export const STEP = 10;
export const BIG_STEP = 50;

// the four corners of the number pad (7, 9, 1, 3 without Num Lock) go slanted: a triangle needs them
const MOVES: Record<string, [number, number]> = {
  ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1],
  Home: [-1, -1], PageUp: [1, -1], End: [-1, 1], PageDown: [1, 1],
};

/**
 * Lets `svg` be drawn on with the keys. `say` tells where the pen is (a live region: a screen reader
 * reads it); `done` after each line, as for the mouse. The arrows move on the drawing as it looks:
 * the drawing is not mirrored in a right-to-left language, so neither are they.
 */
export function keyboardPen(
  svg: SVGSVGElement,
  pad: KeyPen & { strokes: Stroke[]; colour: number; size: number },
  say: (down: boolean, x: number, y: number) => void,
  done: () => void,
): { moveTo(x: number, y: number): void } {
  svg.setAttribute("tabindex", "0");
  // the keys go to the drawing, not to the screen reader's own reading keys
  svg.setAttribute("role", "application");
  const cursor = document.createElementNS(SVG, "g");
  cursor.classList.add("cursor");
  cursor.setAttribute("aria-hidden", "true");
  // a cross and a square tip (no circle or polyline: those are the lines drawn)
  const parts = [0, 1, 2, 3].map(() => document.createElementNS(SVG, "line"));
  const tip = document.createElementNS(SVG, "rect");
  cursor.append(...parts, tip);
  let line: SVGElement | undefined;

  const draw = () => {
    const [x, y] = (pad.cursor ??= [WIDTH / 2, HEIGHT / 2]);
    const ends = [[x - 22, y, x - 8, y], [x + 8, y, x + 22, y], [x, y - 22, x, y - 8], [x, y + 8, x, y + 22]];
    parts.forEach((p, i) => {
      const [x1, y1, x2, y2] = ends[i]!;
      p.setAttribute("x1", String(x1));
      p.setAttribute("y1", String(y1));
      p.setAttribute("x2", String(x2));
      p.setAttribute("y2", String(y2));
    });
    tip.setAttribute("x", String(x - 6));
    tip.setAttribute("y", String(y - 6));
    tip.setAttribute("width", "12");
    tip.setAttribute("height", "12");
    tip.setAttribute("rx", "3");
    // filled in the pen's colour when it is down, so the child sees it will draw
    tip.setAttribute("fill", pad.pen ? COLOURS[pad.colour]! : "#ffffff");
    tip.setAttribute("stroke", COLOURS[pad.colour]!);
    cursor.classList.toggle("down", !!pad.pen);
    const shown = pad.pen ? strokeElement({ colour: pad.colour, size: pad.size, points: pad.pen }) : undefined;
    if (line && shown) line.replaceWith(shown);
    else if (line) line.remove();
    else if (shown) cursor.before(shown);
    line = shown;
    svg.append(cursor); // always on top
  };

  const lift = () => {
    if (!pad.pen) return;
    pad.strokes.push({ colour: pad.colour, size: pad.size, points: pad.pen });
    pad.pen = undefined;
    line?.replaceWith(strokeElement(pad.strokes.at(-1)!));
    line = undefined;
    done();
  };

  svg.addEventListener("keydown", (e) => {
    const move = MOVES[e.key];
    if (move) {
      e.preventDefault(); // no scrolling of the page
      const step = e.shiftKey ? BIG_STEP : STEP;
      const [x0, y0] = (pad.cursor ??= [WIDTH / 2, HEIGHT / 2]);
      const x = Math.max(0, Math.min(WIDTH, x0 + move[0] * step));
      const y = Math.max(0, Math.min(HEIGHT, y0 + move[1] * step));
      pad.cursor = [x, y];
      if (pad.pen) extend(pad.pen, x, y);
    } else if (e.key === " " || e.key === "Enter") {
      e.preventDefault(); // Enter must not send the letter, Space must not scroll
      if (e.repeat) return;
      if (pad.pen) lift();
      else pad.pen = [...(pad.cursor ??= [WIDTH / 2, HEIGHT / 2])];
    } else if (e.key === "Escape" && pad.pen) {
      e.preventDefault();
      lift();
    } else return;
    draw();
    say(!!pad.pen, pad.cursor![0], pad.cursor![1]);
  });
  // Tab away with the pen down: the line is kept, as lifting a finger would. Not when the screen was
  // drawn again (a message arrived): the new drawing space has the pen, still down, and the focus.
  svg.addEventListener("blur", () =>
    setTimeout(() => {
      if (pad.pen && svg.isConnected && document.activeElement !== svg) (lift(), draw(), say(false, pad.cursor![0], pad.cursor![1]));
    }),
  );
  draw();
  return {
    /** The mouse or finger lifted here: the keys carry on from where it stopped. */
    moveTo(x: number, y: number) {
      pad.cursor = [Math.round(x), Math.round(y)];
      draw();
    },
  };
}

/** A step in the same direction as the last one lengthens it instead of adding a point: a long straight line stays 2 points. */
function extend(points: number[], x: number, y: number): void {
  const n = points.length;
  if (n >= 4) {
    const [ax, ay, bx, by] = points.slice(n - 4) as [number, number, number, number];
    const same = (bx - ax) * (y - by) === (by - ay) * (x - bx) && (bx - ax) * (x - bx) + (by - ay) * (y - by) > 0;
    if (same) {
      points[n - 2] = x;
      points[n - 1] = y;
      return;
    }
  }
  if (points[n - 2] === x && points[n - 1] === y) return; // against the edge: no move
  points.push(x, y);
}
