// The drawing space with its colours, sizes, undo and clear: one for a letter to a friend (main.ts)
// and one for a channel's composer (channels.ts), so a drawing is made the same way in both.
import { COLOURS, drawingElement, HEIGHT, simplify, SIZES, strokeElement, WIDTH, type Stroke } from "./drawing.js";
import { keyboardPen, type KeyPen } from "./draw-keys.js";
import type { Key } from "./i18n.js";

/** What is being drawn: kept by the screen, so a redraw of the page keeps the lines (and the keyboard's pen). */
export interface Pad extends KeyPen {
  strokes: Stroke[];
  colour: number;
  size: number;
}

type Child = Node | string | false | undefined | null;
type Attrs = Record<string, string | boolean | number | ((e: Event) => void) | undefined>;
type H = <K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs, ...children: Child[]) => HTMLElementTagNameMap[K];

/** The <svg> one draws on with a finger, a pen, a mouse or the keys; `done` after each line, `say` where the keyboard's pen is. */
export function canvas(pad: Pad, label: string, done: () => void, say: (down: boolean, x: number, y: number) => void = () => {}): SVGSVGElement {
  const svg = drawingElement(pad.strokes, label);
  svg.id = "canvas";
  svg.classList.add("canvas");
  svg.setAttribute("aria-describedby", "draw-keys");
  const keys = keyboardPen(svg, pad, say, done);
  let current: { stroke: Stroke; el: SVGElement; raw: number[] } | undefined;
  const at = (e: PointerEvent): [number, number] => {
    const r = svg.getBoundingClientRect();
    return [Math.max(0, Math.min(WIDTH, ((e.clientX - r.left) / r.width) * WIDTH)), Math.max(0, Math.min(HEIGHT, ((e.clientY - r.top) / r.height) * HEIGHT))];
  };
  // a finger or the mouse leaves the focus where it was (the last colour chosen): focusing the space
  // would scroll it on a small screen in the middle of a line
  svg.addEventListener("mousedown", (e) => e.preventDefault());
  svg.addEventListener("pointerdown", (e) => {
    if (pad.pen) return; // the keyboard's pen is down: one line at a time
    try {
      svg.setPointerCapture(e.pointerId); // a line may leave the drawing space and come back
    } catch {
      /* not a real pointer */
    }
    const [x, y] = at(e);
    const stroke: Stroke = { colour: pad.colour, size: pad.size, points: [Math.round(x), Math.round(y)] };
    current = { stroke, el: strokeElement({ ...stroke, points: [x, y, x, y] }), raw: [x, y] };
    svg.append(current.el);
  });
  svg.addEventListener("pointermove", (e) => {
    if (!current) return;
    current.raw.push(...at(e));
    current.el.setAttribute("points", current.raw.map(Math.round).join(" "));
  });
  const end = () => {
    if (!current) return;
    current.stroke.points = simplify(current.raw);
    pad.strokes.push(current.stroke);
    current.el.replaceWith(strokeElement(current.stroke));
    keys.moveTo(current.raw.at(-2)!, current.raw.at(-1)!);
    current = undefined;
    done();
  };
  svg.addEventListener("pointerup", end);
  svg.addEventListener("pointercancel", end);
  return svg;
}

/** Colours, sizes, the drawing space, undo and clear. `changed` after every change of the lines. */
export function drawTools(h: H, t: (key: Key, vars?: Record<string, string | number>) => string, pad: Pad, changed: () => void): HTMLDivElement {
  const colourNames = t("colours").split(",");
  const sizeNames = t("sizes").split(",");
  const pick = (e: Event, what: "colour" | "size", i: number) => {
    pad[what] = i;
    const group = (e.currentTarget as HTMLElement).parentElement!;
    for (const b of group.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b === e.currentTarget));
  };
  // where the keyboard's pen is, read out by a screen reader (a live region)
  const where = h("p", { id: "pen-status", class: "sr", role: "status" });
  const say = (down: boolean, x: number, y: number) => void (where.textContent = t(down ? "penDown" : "penUp", { x: Math.round(x), y: Math.round(y) }));
  let space = canvas(pad, t("drawHere"), changed, say);
  // undo and clear draw the space again in place: the rest of the screen (and the focus) stays
  const again = () => {
    pad.pen = undefined;
    const fresh = canvas(pad, t("drawHere"), changed, say);
    space.replaceWith(fresh);
    space = fresh;
    changed();
  };
  return h("div", { class: "draw" },
    h("div", { role: "group", "aria-label": t("colour"), class: "colours" },
      ...COLOURS.map((_, i) => h("button", { type: "button", class: "colour", "data-colour": String(i), "aria-label": colourNames[i], "aria-pressed": String(pad.colour === i), onclick: (e) => pick(e, "colour", i) }))),
    h("div", { role: "group", "aria-label": t("size"), class: "sizes" },
      ...SIZES.map((_, i) => h("button", { type: "button", class: `size size-${i}`, "aria-pressed": String(pad.size === i), onclick: (e) => pick(e, "size", i) }, sizeNames[i]))),
    space,
    h("p", { id: "draw-keys", class: "hint" }, t("drawKeys")),
    where,
    h("div", { class: "actions" },
      h("button", { type: "button", id: "undo", onclick: () => (pad.strokes.pop(), again()) }, "↶ ", t("undo")),
      h("button", { type: "button", id: "clear", onclick: () => ((pad.strokes.length = 0), again()) }, "⟲ ", t("clear"))));
}
