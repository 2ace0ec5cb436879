// The supervisor console: a live per-agent grid, queue tiles with thresholds, one-click
// listen / whisper / barge, force pause or log out, pause a campaign, and a live feed of events.
// Everything live comes from /supervisor/events (server-sent events; no polling). Actions are the
// API's, sent with the session's CSRF token.
import { pct, duration, clock, el } from "/static/format.js";

const $ = (id) => document.getElementById(id);
const STATE_NAMES = {
  available: "Available", reserved: "Ringing", ringing: "Ringing", on_call: "On call",
  wrap_up: "Wrap-up", paused: "Paused", not_ready: "Not ready", logged_out: "Logged out",
};
const FEED_MAX = 200;

let me = null;
let csrf = "";
let setup = { pause_reasons: [], queues: [], campaigns: [], agents: {} };
const agents = new Map();
let snap = null;
let timeZone = "UTC";
// The controller's clock (it may run faster than the wall in a demo): the last push's time,
// when it came, and the rate between the last two pushes.
let ctlAt = 0, wallAt = 0, rate = 1;
let sort = { key: "name", desc: false };
let sessions = [];
let monitoring = -1;

function now() {
  return ctlAt + (Date.now() / 1000 - wallAt) * rate;
}

async function api(method, path, body) {
  const headers = {};
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    headers["X-CSRF-Token"] = csrf;
  }
  const r = await fetch(path, { method, headers, body: method === "GET" ? undefined : JSON.stringify(body || {}) });
  let data = {};
  try { data = await r.json(); } catch { data = {}; }
  return [r.status, data];
}

function notice(text, error = false) {
  const n = $("notice");
  n.textContent = text;
  n.className = error ? "error" : "";
}

function failed(what, status, data) {
  const msg = data && data.error ? data.error.message : `HTTP ${status}`;
  notice(`${what}: ${msg}`, true);
}

// ------------------------------------------------------------------ the grid
function agentRow(a) {
  const tr = el("tr");
  tr.dataset.agent = a.id;
  const name = el("td", "agent", a.name);
  name.append(el("small", "", a.id));
  const state = el("td");
  state.append(el("span", `state s-${a.state}`, STATE_NAMES[a.state] || a.state));
  const since = el("td", "num", a.since ? duration(now() - a.since) : "-");
  if (a.since) since.dataset.since = String(a.since);
  const paused = a.state === "paused" || a.state === "not_ready";
  const reason = el("td", "", paused ? a.reason : "");
  const call = el("td", "", a.call_id ? a.call_id.slice(0, 10) : "");
  if (a.call_id) call.title = a.call_id;
  const queue = el("td", "queue", a.queue || (a.queues || []).join(", "));
  queue.title = (a.queues || []).join(", ");
  const calls = el("td", "num", String(a.calls_today ?? 0));
  const aht = el("td", "num", duration(a.aht));
  const actions = el("td", "actions");
  const onCall = a.state === "on_call";
  for (const mode of ["listen", "whisper", "barge"]) {
    const b = el("button", "", mode[0].toUpperCase() + mode.slice(1));
    b.dataset.action = mode;
    b.disabled = !onCall;
    b.title = onCall ? `${mode} on ${a.name}: rings your phone` : "the agent is not on a call";
    b.addEventListener("click", () => monitor(a.id, mode));
    actions.append(b);
  }
  const pause = el("button", "", "Pause");
  pause.dataset.action = "pause";
  pause.disabled = a.state === "logged_out" || a.state === "paused";
  pause.addEventListener("click", () => askPause(a));
  const logout = el("button", "", "Log out");
  logout.dataset.action = "logout";
  logout.disabled = a.state === "logged_out";
  logout.addEventListener("click", () => agentAction(a, "logout"));
  actions.append(pause, logout);
  tr.append(name, state, since, reason, call, queue, calls, aht, actions);
  return tr;
}

function sortValue(a, key) {
  switch (key) {
    case "since": return a.since ? -a.since : -Infinity;
    case "calls_today": return a.calls_today ?? 0;
    case "aht": return a.aht ?? -1;
    case "call": return a.call_id || "";
    case "queue": return a.queue || "";
    case "state": return STATE_NAMES[a.state] || a.state;
    case "reason": return a.reason || "";
    default: return a.name || a.id;
  }
}

function renderGrid() {
  const q = $("queue-filter").value;
  const st = $("state-filter").value;
  const text = $("search").value.trim().toLowerCase();
  const rows = [...agents.values()].filter((a) =>
    (!q || (a.queues || []).includes(q) || a.queue === q) &&
    (!st || a.state === st || (st === "ringing" && a.state === "reserved")) &&
    (!text || a.name.toLowerCase().includes(text) || a.id.includes(text)));
  rows.sort((x, y) => {
    const a = sortValue(x, sort.key), b = sortValue(y, sort.key);
    const c = typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b));
    return (sort.desc ? -c : c) || x.id.localeCompare(y.id);
  });
  $("agents").replaceChildren(...rows.map(agentRow));
  const busy = rows.filter((a) => a.state !== "logged_out").length;
  $("count").textContent = `${rows.length} agents, ${busy} logged in`;
  for (const th of document.querySelectorAll("#grid th[data-sort]")) {
    th.classList.toggle("sorted", th.dataset.sort === sort.key);
    th.classList.toggle("desc", th.dataset.sort === sort.key && sort.desc);
  }
}

// ------------------------------------------------------------------ queue tiles
function fig(label, value, level) {
  const f = el("div", `fig ${level && level !== "ok" ? level : ""}`);
  f.append(el("b", "", value), el("span", "", label));
  return f;
}

function renderTiles() {
  if (!snap) return;
  const mine = new Set(setup.queues.map((q) => q.id));
  const tiles = [];
  const grow = Math.max(0, now() - snap.at);
  for (const q of snap.queues) {
    if (!mine.has(q.name)) continue;
    const lv = q.levels || {};
    const tile = el("div", `tile ${lv.overall && lv.overall !== "ok" ? lv.overall : ""}`);
    tile.dataset.queue = q.name;
    const h = el("h3");
    h.append(el("span", "", q.name), el("span", "", `target ${Math.round(q.sl_target_fraction * 100)}%/${q.sl_target_seconds}s`));
    h.lastChild.style.cssText = "font-weight:400;font-size:12px;color:#5d6d7e";
    const figs = el("div", "figs");
    const avail = (q.agents || {}).available || 0;
    figs.append(
      fig("waiting", String(q.waiting), lv.waiting),
      fig("longest", q.waiting ? duration(q.longest_wait + grow) : "-", lv.longest_wait),
      fig("service level", pct(q.service_level), lv.service_level),
      fig("abandoned", pct(q.abandonment)),
      fig("ASA", duration(q.asa)),
      fig("AHT", duration(q.aht)),
      fig("available", String(avail)),
      fig("on call", String((q.agents || {}).on_call || 0)),
    );
    tile.append(h, figs);
    tiles.push(tile);
  }
  $("tiles").replaceChildren(...tiles);
}

// ------------------------------------------------------------------ the live feed
function feedLine(c) {
  const d = c.data || {};
  const who = c.agent_id ? (agents.get(c.agent_id)?.name || c.agent_id) : "";
  const q = (c.queues || []).join(", ");
  switch (c.kind) {
    case "call.queued": return [`Call ${short(c.call_id)} queued in ${d.queue}`, ""];
    case "call.offered": return [`Call ${short(c.call_id)} (${d.queue}) offered to ${who}`, ""];
    case "call.answered": return [`${who} answered ${short(c.call_id)} (${d.queue})`, ""];
    case "call.held": return [`${who} put ${short(c.call_id)} on hold`, ""];
    case "call.unheld": return [`${who} took ${short(c.call_id)} off hold`, ""];
    case "call.transferred": return [`Call ${short(c.call_id)} transferred to ${d.queue || "elsewhere"}`, ""];
    case "call.ended": return [`Call ${short(c.call_id)} (${d.queue}) ended`, ""];
    case "agent.state": {
      const name = STATE_NAMES[d.state] || d.state;
      const why = d.reason && !["on_call", "ringing", "reserved", "available"].includes(d.state) ? ` (${d.reason})` : "";
      return [`${who}: ${name}${why}`, ""];
    }
    case "threshold": {
      const val = d.metric === "service_level" ? pct(d.value) : d.metric === "longest_wait" ? duration(d.value) : d.value;
      const what = { service_level: "service level", longest_wait: "longest wait", waiting: "waiting" }[d.metric] || d.metric;
      return [`${q}: ${what} ${val} is ${d.level}${d.level === "ok" ? " again" : ""}`, `threshold-${d.level}`];
    }
    default: return ["", ""];
  }
}

function short(id) {
  return id ? String(id).slice(0, 12) : "?";
}

function addFeed(c) {
  const [text, cls] = feedLine(c);
  if (!text) return;
  const li = el("li", cls);
  li.dataset.kind = c.kind;
  li.append(el("time", "", clock(c.at, timeZone)), document.createTextNode(text));
  const list = $("feed");
  list.prepend(li);
  while (list.childElementCount > FEED_MAX) list.lastElementChild.remove();
}

// ------------------------------------------------------------------ actions
async function monitor(agentId, mode) {
  const supervisor = $("sup-id").value.trim();
  if (!supervisor) { notice("Type the supervisor id whose phone rings (top right).", true); return; }
  notice(`Ringing your phone to ${mode} on ${agentId}...`);
  const [status, data] = await api("POST", "/api/monitor/sessions", {
    supervisor_id: supervisor, agent_id: agentId, mode, pin: $("pin").value,
  });
  if (status !== 201) { failed(`${mode} on ${agentId}`, status, data); return; }
  notice(`Your phone rings: answer it to ${mode} on ${agentId}.`);
  await loadSessions();
}

async function agentAction(a, what, body) {
  const [status, data] = await api("POST", `/api/agents/${encodeURIComponent(a.id)}/${what}`, body);
  if (status !== 200) failed(`${what} ${a.name}`, status, data);
  else notice(`${a.name}: ${what === "logout" ? "logged out" : "paused"}${data.status && data.status !== "logged_out" && what === "logout" ? " after the call" : ""}.`);
}

function askPause(a) {
  const dialog = $("pause-dialog");
  $("pause-agent").textContent = a.name;
  dialog.onclose = () => {
    if (dialog.returnValue === "ok") agentAction(a, "pause", { reason: $("pause-reason").value });
  };
  dialog.showModal();
}

async function loadSessions() {
  const [status, data] = await api("GET", "/api/monitor/sessions");
  sessions = status === 200 ? data.sessions : [];
  const box = $("sessions");
  if (!sessions.length) {
    box.replaceChildren(el("p", "empty", "No listen-in in progress."));
    return;
  }
  box.replaceChildren(...sessions.map((s) => {
    const row = el("div", "session");
    row.dataset.session = s.session_id;
    const name = agents.get(s.agent_id)?.name || s.agent_id;
    row.append(el("b", "", `${s.mode} on ${name}${s.spying ? "" : " (ringing you)"}`));
    for (const mode of ["listen", "whisper", "barge"]) {
      if (mode === s.mode) continue;
      const b = el("button", "", mode[0].toUpperCase() + mode.slice(1));
      b.addEventListener("click", async () => {
        const [st, d] = await api("POST", `/api/monitor/sessions/${s.session_id}/mode`, { mode });
        if (st !== 200) failed(`switch to ${mode}`, st, d);
        await loadSessions();
      });
      row.append(b);
    }
    const stop = el("button", "", "Stop");
    stop.addEventListener("click", async () => {
      const [st, d] = await api("POST", `/api/monitor/sessions/${s.session_id}/stop`);
      if (st !== 200) failed("stop", st, d);
      await loadSessions();
    });
    row.append(stop);
    return row;
  }));
}

function renderCampaigns() {
  // the campaigns' states ride in the snapshot (its dialers): live, no polling
  const box = $("campaigns");
  if (!setup.campaigns.length || !snap) return;
  const states = Object.fromEntries((snap.dialers || []).map((d) => [d.campaign, d]));
  const rows = setup.campaigns.map((c) => {
    const d = states[c.id];
    const state = d ? d.state : "unknown";
    const row = el("div", "campaign");
    row.dataset.campaign = c.id;
    row.append(el("b", "", `${c.id} (${c.mode}, ${c.queue})`), el("span", "", state));
    const paused = state === "paused";
    const b = el("button", "", paused ? "Resume" : "Pause");
    b.disabled = state !== "running" && state !== "paused";
    b.addEventListener("click", async () => {
      const [st, data] = await api("POST", `/api/campaigns/${encodeURIComponent(c.id)}/${paused ? "resume" : "pause"}`);
      if (st !== 200) failed(`${paused ? "resume" : "pause"} ${c.id}`, st, data);
      else notice(`Campaign ${c.id} ${paused ? "resumed" : "paused"}.`);
    });
    row.append(b);
    return row;
  });
  const key = JSON.stringify(setup.campaigns.map((c) => states[c.id]?.state));
  if (box.dataset.key !== key) {  // rebuilt only when a state changed (a click is never lost)
    box.dataset.key = key;
    box.replaceChildren(...rows);
  }
}

// ------------------------------------------------------------------ the stream
function apply(c) {
  if (c.kind === "snapshot") {
    snap = c.data;
    timeZone = snap.timezone || timeZone;
    if (snap.monitoring !== monitoring) {
      monitoring = snap.monitoring;
      loadSessions();
    }
    return;
  }
  if (c.kind === "agent.state") {
    const d = c.data;
    const known = setup.agents[c.agent_id] || {};
    agents.set(c.agent_id, {
      id: c.agent_id, name: d.name || known.name || c.agent_id, state: d.state, reason: d.reason,
      since: d.since, call_id: d.call_id, queue: d.queue, queues: known.queues || c.queues,
      calls_today: d.calls_today, aht: d.aht,
    });
  }
}

function connect() {
  const source = new EventSource("/supervisor/events");
  let first = true;
  source.onopen = () => { $("live").textContent = "live"; $("live").className = "pill on"; };
  source.onerror = () => { $("live").textContent = "reconnecting"; $("live").className = "pill off"; };
  source.onmessage = (m) => {
    const push = JSON.parse(m.data);
    const wall = Date.now() / 1000;
    if (wallAt && wall - wallAt > 0.5 && push.at > ctlAt) {
      rate = Math.min(1000, Math.max(0.1, (push.at - ctlAt) / (wall - wallAt)));
    }
    ctlAt = push.at;
    wallAt = wall;
    for (const c of push.changes) {
      apply(c);
      if (!first && c.kind !== "snapshot") addFeed(c);
    }
    first = false;
    renderTiles();
    renderGrid();
    renderCampaigns();
  };
}

async function start() {
  const r = await fetch("/api/session");
  if (r.status !== 200) {
    $("signin").hidden = false;
    return;
  }
  me = await r.json();
  csrf = me.csrf_token;
  $("who").textContent = `${me.user} (${me.role})`;
  if (me.role !== "supervisor" && me.role !== "admin") {
    $("signin").hidden = false;
    $("signin").querySelector("p").textContent = `Signed in as ${me.user} (${me.role}): the console is for supervisors.`;
    return;
  }
  $("sup-id").value = me.agent_id || "";
  const [status, data] = await api("GET", "/api/console");
  if (status === 200) setup = data;
  for (const q of setup.queues) $("queue-filter").append(new Option(q.name, q.id));
  for (const [k, v] of Object.entries(STATE_NAMES)) if (k !== "reserved") $("state-filter").append(new Option(v, k));
  for (const p of setup.pause_reasons) $("pause-reason").append(new Option(p.name, p.code));
  for (const id of ["queue-filter", "state-filter", "search"]) $(id).addEventListener("input", renderGrid);
  for (const th of document.querySelectorAll("#grid th[data-sort]")) {
    th.addEventListener("click", () => {
      sort = { key: th.dataset.sort, desc: sort.key === th.dataset.sort ? !sort.desc : false };
      renderGrid();
    });
  }
  $("console").hidden = false;
  connect();
  setInterval(() => {
    for (const td of document.querySelectorAll("td[data-since]")) td.textContent = duration(now() - Number(td.dataset.since));
    renderTiles();
  }, 1000);
}

$("logout").addEventListener("click", async () => {
  await api("POST", "/logout");
  location.href = "/login?next=/supervisor";
});

start();
