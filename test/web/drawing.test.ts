// The drawing format (packages/model/src/drawing.ts, which the page loads as drawing-codec.js) and the app's words (i18n.ts), without a
// browser: a drawing comes back line for line, anything else that claims to be a drawing is refused
// (it is shown as "a drawing that could not be shown", never parsed as markup), and every language
// has every word with the same blanks to fill.
import { describe, expect, it } from "vitest";
import { decodeDrawing, encodeDrawing, HEIGHT, MAX_CHARS, DRAWING_PREFIX, simplify, WIDTH, type Stroke } from "../../packages/app/web/src/drawing.js";
import { chooseLang, direction, LANGUAGES, translator, type Lang } from "../../packages/app/web/src/i18n.js";

describe("a drawing as a message", () => {
  it("comes back line for line, colours and sizes kept, points held to the drawing space", () => {
    const strokes: Stroke[] = [
      { colour: 1, size: 0, points: [0, 0, 300, 200, 600, 400] },
      { colour: 7, size: 2, points: [10, 390] },
    ];
    const text = encodeDrawing(strokes);
    expect(text.startsWith(DRAWING_PREFIX)).toBe(true);
    expect(decodeDrawing(text)).toEqual(strokes);
    // outside the space: held to its edges
    expect(decodeDrawing(encodeDrawing([{ colour: 0, size: 1, points: [-5, 9999, 700, 450] }]))).toEqual([{ colour: 0, size: 1, points: [0, HEIGHT, WIDTH, HEIGHT] }]);
  });

  it("refuses anything that is not exactly stroke data: markup, script, other colours, too big", () => {
    const ok = encodeDrawing([{ colour: 2, size: 1, points: [1, 2, 3, 4] }]);
    for (const bad of [
      DRAWING_PREFIX + "<svg onload=alert(1)>",
      DRAWING_PREFIX + "21AAAA <script>",
      DRAWING_PREFIX + "81AAAAAAAA", // colour 8: not in the palette
      DRAWING_PREFIX + "13AAAAAAAA", // size 3
      DRAWING_PREFIX + "21AAA", // half a point
      DRAWING_PREFIX + "21", // no point
      ok + " ",
      ok.replace(DRAWING_PREFIX, DRAWING_PREFIX.toUpperCase()),
      DRAWING_PREFIX + "21" + "AAAA".repeat(MAX_CHARS / 4), // over the limit
    ])
      expect(decodeDrawing(bad), bad.slice(0, 60)).toBeUndefined();
    expect(decodeDrawing("hello")).toBeUndefined();
    expect(decodeDrawing(DRAWING_PREFIX)).toEqual([]);
  });

  it("keeps a finger's many points small: close points are dropped, the ends kept", () => {
    const raw = [];
    for (let i = 0; i <= 100; i++) raw.push(i * 0.5, 10);
    const kept = simplify(raw);
    expect(kept.slice(0, 2)).toEqual([0, 10]);
    expect(kept.slice(-2)).toEqual([50, 10]);
    expect(kept.length).toBeLessThan(raw.length / 4);
  });
});

describe("the app's words", () => {
  const en = LANGUAGES.en;
  const blanks = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

  it("every language has every word, none empty, with the same blanks", () => {
    for (const [lang, words] of Object.entries(LANGUAGES)) {
      expect(Object.keys(words).sort(), lang).toEqual(Object.keys(en).sort());
      for (const [key, text] of Object.entries(words)) {
        expect(text.trim(), `${lang}.${key}`).not.toBe("");
        expect(blanks(text), `${lang}.${key}`).toEqual(blanks(en[key as keyof typeof en]));
      }
      expect(words.colours.split(",")).toHaveLength(8);
      expect(words.sizes.split(",")).toHaveLength(3);
    }
  });

  it("are chosen by the child, else from the system's languages, else English; Arabic is right to left", () => {
    expect(chooseLang(null, ["fr-FR", "en"])).toBe("fr");
    expect(chooseLang(null, ["de-DE", "es-419"])).toBe("es");
    expect(chooseLang(null, ["de-DE"])).toBe("en");
    expect(chooseLang("sw", ["fr-FR"])).toBe("sw");
    expect(chooseLang("xx", ["fr-FR"])).toBe("fr");
    expect((["en", "fr", "es", "sw"] as Lang[]).map(direction)).toEqual(["ltr", "ltr", "ltr", "ltr"]);
    expect(direction("ar")).toBe("rtl");
    expect(translator("fr")("from", { who: "amara" })).toBe("De amara");
  });
});
