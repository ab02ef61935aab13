// Hybrid logical clock: orders a conversation causally even when laptop clocks are days off.
// A message sent after one was received always sorts after it, whatever the sender's clock says.
export interface Hlc {
  wall: number; // ms
  counter: number;
}

export const HLC_ZERO: Hlc = { wall: 0, counter: 0 };

/** The counter has four base-36 digits on the wire; past that the wall clock moves on by a millisecond. */
export const HLC_MAX_COUNTER = 36 ** 4 - 1;

/** Next timestamp for a local event. */
export function hlcTick(prev: Hlc, nowMs: number): Hlc {
  if (nowMs > prev.wall) return { wall: nowMs, counter: 0 };
  if (prev.counter >= HLC_MAX_COUNTER) return { wall: prev.wall + 1, counter: 0 };
  return { wall: prev.wall, counter: prev.counter + 1 };
}

/** Merge a timestamp seen on a received message. */
export function hlcReceive(prev: Hlc, remote: Hlc, nowMs: number): Hlc {
  const wall = Math.max(prev.wall, remote.wall, nowMs);
  let counter = 0;
  if (wall === prev.wall && wall === remote.wall) counter = Math.max(prev.counter, remote.counter) + 1;
  else if (wall === prev.wall) counter = prev.counter + 1;
  else if (wall === remote.wall) counter = remote.counter + 1;
  if (counter > HLC_MAX_COUNTER) return { wall: wall + 1, counter: 0 };
  return { wall, counter };
}

/** Fixed-width base-36 text that sorts like the clock. */
export function formatHlc(h: Hlc): string {
  return `${h.wall.toString(36).padStart(9, "0")}.${h.counter.toString(36).padStart(4, "0")}`;
}

export function parseHlc(s: string): Hlc | null {
  const m = /^([0-9a-z]{9})\.([0-9a-z]{4})$/.exec(s);
  if (!m) return null;
  return { wall: parseInt(m[1]!, 36), counter: parseInt(m[2]!, 36) };
}

export function compareHlc(a: Hlc, b: Hlc): number {
  return a.wall - b.wall || a.counter - b.counter;
}
