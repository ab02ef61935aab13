// Making friends without typing 196 characters: my friend code (the contact card) shown as a QR code,
// a friend's read with the laptop's camera, and a short code (the first 8 characters of the person's
// fingerprint) that finds a laptop met nearby. The QR code is drawn and read by @paulmillr/qr (no
// dependencies, encoder and decoder in 21 KB gzipped; its ES modules are built into dist/web/vendor,
// nothing is fetched from elsewhere). Where the browser has a BarcodeDetector it reads the frames;
// otherwise the library does. What a camera reads is only ever text handed to the node's
// "add a contact" call, which checks it as it checks a typed code.
import encodeQR from "./vendor/qr/index.js";
import decodeQR from "./vendor/qr/decode.js";

const SVG = "http://www.w3.org/2000/svg";

/** The QR code of `text` as an SVG image named `label` (dark squares of one path, a light border). */
export function qrElement(text: string, label: string): SVGSVGElement {
  const rows = encodeQR(text, "raw", { ecc: "low", border: 4 }) as (boolean | undefined)[][];
  const n = rows.length;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${n} ${n}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  svg.setAttribute("class", "qr");
  svg.setAttribute("shape-rendering", "crispEdges");
  const back = document.createElementNS(SVG, "rect");
  back.setAttribute("width", String(n));
  back.setAttribute("height", String(n));
  back.setAttribute("fill", "#fff");
  const path = document.createElementNS(SVG, "path");
  let d = "";
  rows.forEach((row, y) => row.forEach((dark, x) => (d += dark ? `M${x} ${y}h1v1h-1z` : "")));
  path.setAttribute("d", d);
  path.setAttribute("fill", "#000");
  svg.append(back, path);
  return svg;
}

/** The short code of a fingerprint ("a7mf-qsxr-ijkl-mnop" gives "a7mf-qsxr"). */
export function shortCode(fingerprint: string): string {
  return fingerprint.slice(0, 9);
}

/** Whether typed text is a short code (any case, with or without the dash). */
export function asShortCode(typed: string): string | undefined {
  const m = /^\s*([a-z2-7]{4})-?([a-z2-7]{4})\s*$/i.exec(typed);
  return m ? `${m[1]!.toLowerCase()}-${m[2]!.toLowerCase()}` : undefined;
}

interface Detector { detect(source: CanvasImageSource): Promise<{ rawValue: string }[]> }
declare const BarcodeDetector: (new (o: { formats: string[] }) => Detector) & { getSupportedFormats(): Promise<string[]> } | undefined;

/** A running camera: stop() turns it off (the light goes out). */
export interface Scan { stop(): void }

/**
 * Turns the camera on in `video` and reads frames until one holds a QR code; then turns it off and
 * gives its text. Rejects when there is no camera (or the child says no).
 */
export async function scan(video: HTMLVideoElement, found: (text: string) => void): Promise<Scan> {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "user" }, audio: false });
  video.srcObject = stream;
  video.muted = true;
  await video.play().catch(() => {});
  let detector: Detector | undefined;
  try {
    if (typeof BarcodeDetector !== "undefined" && (await BarcodeDetector.getSupportedFormats()).includes("qr_code")) detector = new BarcodeDetector({ formats: ["qr_code"] });
  } catch {
    detector = undefined;
  }
  const canvas = document.createElement("canvas");
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    for (const track of stream.getTracks()) track.stop();
    video.srcObject = null;
  };
  const look = async () => {
    if (stopped) return;
    let text: string | undefined;
    if (video.videoWidth > 0) {
      if (detector) text = (await detector.detect(video).catch(() => []))[0]?.rawValue;
      else {
        // a frame at most 640 wide: enough for a code held up to the camera, quick on a slow laptop
        const scale = Math.min(1, 640 / video.videoWidth);
        canvas.width = Math.round(video.videoWidth * scale);
        canvas.height = Math.round(video.videoHeight * scale);
        const ctx = canvas.getContext("2d", { willReadFrequently: true })!;
        ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
        const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
        try {
          text = decodeQR({ width: img.width, height: img.height, data: img.data });
        } catch {
          text = undefined; // no code in this frame
        }
      }
    }
    if (stopped) return;
    if (text) {
      stop();
      found(text);
      return;
    }
    timer = setTimeout(() => void look(), 150);
  };
  void look();
  return { stop };
}
