// The wallboard: the current picture from the page itself (first paint), then the public event
// stream (/wallboard/events: aggregates only). No polling; a "stale" warning when updates stop.
import { pct, duration, clock, day, STATES, foldStates, el } from "/static/format.js";

// seconds without a snapshot (the server sends one at least every 5 s); ?stale=N changes it
const STALE_AFTER = Number(new URLSearchParams(location.search).get("stale")) || 15;
let snap = null;
let receivedAt = 0; // browser's time (s) when `snap` arrived
let lastMessage = 0;

function level(q, metric) {
  return (q.levels && q.levels[metric]) || "ok";
}

function kpi(id, value, lvl, target) {
  const box = document.getElementById(id);
  box.className = `kpi ${lvl && lvl !== "ok" ? lvl : ""}`;
  box.querySelector(".value").textContent = value;
  let t = box.querySelector(".target");
  if (target !== undefined) {
    if (!t) { t = el("span", "target"); box.append(t); }
    t.textContent = target;
  } else if (t) t.remove();
}

function worst(levels) {
  return levels.includes("red") ? "red" : levels.includes("amber") ? "amber" : "ok";
}

function elapsed() {
  return Math.max(0, Date.now() / 1000 - receivedAt);
}

function render() {
  if (!snap) return;
  const tz = snap.timezone || "UTC";
  if (snap.center) document.getElementById("center").textContent = snap.center;
  const t = snap.totals || {};
  const qs = snap.queues || [];
  // what a test (or a curious operator) can read off the page
  document.body.dataset.offered = String(t.offered ?? 0);
  document.body.dataset.at = String(snap.at);
  const grow = elapsed();
  const longest = Math.max(0, ...qs.map((q) => (q.waiting ? q.longest_wait + grow : 0)));
  kpi("t-waiting", String(t.waiting ?? 0), worst(qs.map((q) => level(q, "waiting"))));
  kpi("t-longest", t.waiting ? duration(longest) : "0:00", worst(qs.map((q) => level(q, "longest_wait"))));
  kpi("t-sl", pct(t.service_level), worst(qs.map((q) => level(q, "service_level"))), "answered in target");
  kpi("t-abandon", pct(t.abandonment), "ok");
  kpi("t-asa", duration(t.asa), "ok");
  kpi("t-aht", duration(t.aht), "ok");
  const rows = document.getElementById("queue-rows");
  const fresh = [];
  for (const q of qs) {
    const tr = el("tr", level(q, "overall") === "ok" ? "" : level(q, "overall"));
    tr.dataset.queue = q.name;
    tr.append(el("td", "name", q.label || q.name));
    tr.append(el("td", level(q, "waiting"), String(q.waiting)));
    tr.append(el("td", level(q, "longest_wait"), q.waiting ? duration(q.longest_wait + grow) : "-"));
    const sl = el("td", level(q, "service_level"), pct(q.service_level));
    sl.append(el("span", "target", `target ${Math.round(q.sl_target_fraction * 100)}% in ${q.sl_target_seconds}s`));
    tr.append(sl);
    tr.append(el("td", "", pct(q.abandonment)));
    tr.append(el("td", "", duration(q.asa)));
    tr.append(el("td", "", duration(q.aht)));
    const agents = el("td", "agents");
    const counts = foldStates(q.agents);
    for (const [k, label] of STATES) {
      if (!counts[k]) continue;
      const chip = el("span", "chip");
      chip.append(el("span", `dot s-${k}`), el("b", "", String(counts[k])), document.createTextNode(` ${label}`));
      agents.append(chip);
    }
    if (!agents.childNodes.length) agents.textContent = "nobody logged in";
    tr.append(agents);
    fresh.push(tr);
  }
  const flashing = new Set([...rows.querySelectorAll("tr.flash")].map((r) => r.dataset.queue));
  for (const tr of fresh) if (flashing.has(tr.dataset.queue)) tr.classList.add("flash");
  rows.replaceChildren(...fresh);
  // rows share the table's height: the font follows the number of queues
  const n = Math.max(qs.length, 3);
  document.documentElement.style.setProperty("--row-font", `calc(${Math.min(5, 27 / n)} * var(--u))`);
  const footer = document.getElementById("agents");
  const all = foldStates(snap.agents_by_state);
  footer.replaceChildren(
    ...STATES.map(([k, label]) => {
      const box = el("div", "state");
      box.dataset.state = k;
      box.append(el("span", `dot s-${k}`), el("span", "n", String(all[k])), el("span", "k", label));
      return box;
    }),
  );
}

function tick() {
  if (snap) {
    const now = snap.at + elapsed();
    document.getElementById("clock").textContent = clock(now, snap.timezone || "UTC");
    document.getElementById("day").textContent = day(now, snap.timezone || "UTC");
  }
  const stale = !receivedAt || Date.now() / 1000 - lastMessage > STALE_AFTER;
  document.body.classList.toggle("stale", stale);
  const banner = document.getElementById("stale");
  banner.hidden = !stale;
  if (stale && snap) document.getElementById("stale-since").textContent = clock(snap.at, snap.timezone || "UTC");
  render();
}

function flash(queue) {
  const row = document.querySelector(`tr[data-queue="${CSS.escape(queue)}"]`);
  if (row) { row.classList.remove("flash"); void row.offsetWidth; row.classList.add("flash"); }
}

function start() {
  const initial = document.getElementById("initial").textContent;
  try {
    snap = JSON.parse(initial);
    receivedAt = lastMessage = Date.now() / 1000;
  } catch { snap = null; }
  render();
  tick();
  setInterval(tick, 1000);
  const source = new EventSource("/wallboard/events");
  source.onmessage = (m) => {
    const push = JSON.parse(m.data);
    for (const c of push.changes) {
      if (c.kind === "snapshot") {
        snap = c.data;
        receivedAt = lastMessage = Date.now() / 1000;
      } else if (c.kind === "threshold") {
        flash(c.data.queue);
      }
    }
    render();
    tick();
  };
}

start();
