// Formatting shared by the wallboard and the supervisor console (plain ES module, no build step).

/** A fraction 0..1 as a rounded percentage ("-" when unknown). */
export function pct(v) {
  return v === null || v === undefined ? "-" : `${Math.round(v * 100)}%`;
}

/** Seconds as m:ss, or h:mm:ss past an hour ("-" when unknown). */
export function duration(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return "-";
  s = Math.max(0, Math.floor(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return (h ? `${h}:` : "") + `${mm}:${String(sec).padStart(2, "0")}`;
}

/** The time of day of a UNIX instant in a time zone, HH:MM:SS. */
export function clock(at, timeZone) {
  const opts = { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };
  try {
    return new Intl.DateTimeFormat("en-GB", { ...opts, timeZone }).format(new Date(at * 1000));
  } catch {
    return new Intl.DateTimeFormat("en-GB", opts).format(new Date(at * 1000));
  }
}

/** The date of a UNIX instant in a time zone, e.g. "Wed 2 Dec". */
export function day(at, timeZone) {
  const opts = { weekday: "short", day: "numeric", month: "short" };
  try {
    return new Intl.DateTimeFormat("en-GB", { ...opts, timeZone }).format(new Date(at * 1000));
  } catch {
    return new Intl.DateTimeFormat("en-GB", opts).format(new Date(at * 1000));
  }
}

/** Agents' states as people say them, in the order a board lists them. */
export const STATES = [
  ["available", "Available"],
  ["ringing", "Ringing"],
  ["on_call", "On call"],
  ["wrap_up", "Wrap-up"],
  ["paused", "Paused"],
  ["not_ready", "Not ready"],
];

/** Counts by state folded into the board's states (reserved rings, logged out is not shown). */
export function foldStates(byState) {
  const out = Object.fromEntries(STATES.map(([k]) => [k, 0]));
  for (const [k, n] of Object.entries(byState || {})) {
    const key = k === "reserved" ? "ringing" : k;
    if (key in out) out[key] += n;
  }
  return out;
}

/** Create an element with a class and text. */
export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
