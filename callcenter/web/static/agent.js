// The agent desk: signs in through /login (session cookie + CSRF token), shows the agent's
// state and call, and acts through the API. Live: the event hub's stream (this agent's state and
// calls); a change reloads the desk. Nothing polls; the clock only ticks the timers shown.

const $ = (id) => document.getElementById(id);
const STATUS_NAMES = {
  logged_out: "Logged out", available: "Ready", reserved: "Call offered", ringing: "Ringing",
  on_call: "On a call", wrap_up: "Wrap-up", paused: "Paused", not_ready: "Not ready",
};
const STAGE_NAMES = { offered: "Offered", connected: "On call", wrap_up: "Wrap-up", ended: "Last call" };

let session = null;   // {user, role, agent_id, csrf_token}
let desk = null;      // the last GET /api/agents/{id}/desk
let deskAt = 0;       // Date.now() when it came
let events = null;    // the EventSource
let refreshing = null;
let again = false;
let pciPaused = false;
let previewHeld = null;

// ---------------------------------------------------------------------------- the API
async function api(method, path, body) {
  const headers = {};
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    if (session) headers["X-CSRF-Token"] = session.csrf_token;
  }
  const r = await fetch(path, { method, headers, body: method === "GET" ? undefined : JSON.stringify(body || {}) });
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) {
    const err = new Error(data && data.error ? data.error.message : `${r.status} ${r.statusText}`);
    err.status = r.status;
    err.code = data && data.error ? data.error.code : "http_error";
    throw err;
  }
  return data;
}

function say(text, kind) {
  const m = $("message");
  m.textContent = text || "";
  m.dataset.kind = kind || "";
}

async function act(label, fn) {
  say("");
  try {
    await fn();
    await refresh();
  } catch (e) {
    say(`${label}: ${e.message}`, "error");
    if (e.status === 401) showSignin();
  }
}

// ---------------------------------------------------------------------------- signing in
function showSignin() {
  session = null;
  if (events) { events.close(); events = null; }
  $("desk").hidden = true;
  $("signin").hidden = false;
  $("signout").hidden = true;
  $("who").textContent = "";
  $("name").focus();
}

async function start(s) {
  session = s;
  if (s.role !== "agent" || !s.agent_id) {
    showSignin();
    session = s;  // signed in, but this desk is an agent's: say where to go instead
    $("signout").hidden = false;
    $("signin-error").textContent = s.role === "agent"
      ? `${s.user} is not bound to an agent`
      : `${s.user} is a ${s.role}: the agent desk is for agents (supervisors: /supervisor)`;
    return;
  }
  $("signin").hidden = true;
  $("desk").hidden = false;
  $("signout").hidden = false;
  $("who").textContent = `${s.user} · agent ${s.agent_id}`;
  listen();
  await refresh();
}

$("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("signin-error").textContent = "";
  try {
    const s = await api("POST", "/login", { name: $("name").value, password: $("password").value });
    $("password").value = "";
    await start(s);
  } catch (err) {
    $("password").value = "";
    $("signin-error").textContent = err.message;
  }
});

$("signout").addEventListener("click", async () => {
  try { await api("POST", "/logout"); } catch (e) { /* signed out anyway */ }
  showSignin();
});

// ---------------------------------------------------------------------------- live updates
// The controller's event hub (GET /api/events): an agent receives its own agent's state and its own
// calls' changes (plus the center's aggregate snapshot, which the desk does not show). Each push
// that touches this agent or its calls reloads the desk; heartbeats and snapshots do not.
const MINE = (c) => c.kind === "agent.state" || c.kind.startsWith("call.");

function listen() {
  if (events) events.close();
  events = new EventSource("/api/events");
  const live = $("live");
  events.onopen = () => { live.textContent = "live"; live.dataset.ok = "1"; };
  events.onerror = () => { live.textContent = "reconnecting"; live.dataset.ok = "0"; };
  events.onmessage = (e) => {
    let push;
    try { push = JSON.parse(e.data); } catch (err) { return; }
    if ((push.changes || []).some(MINE)) refresh();
  };
}

// One refresh at a time; events that arrive meanwhile ask for one more.
async function refresh() {
  if (!session) return;
  if (refreshing) { again = true; return refreshing; }
  refreshing = (async () => {
    do {
      again = false;
      try {
        desk = await api("GET", `/api/agents/${encodeURIComponent(session.agent_id)}/desk`);
        deskAt = Date.now();
        render();
      } catch (e) {
        if (e.status === 401) { showSignin(); return; }
        say(`could not load the desk: ${e.message}`, "error");
      }
    } while (again);
  })();
  try { await refreshing; } finally { refreshing = null; }
}

// ---------------------------------------------------------------------------- rendering
function secondsText(s) {
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${two(m)}:${two(r)}` : `${m}:${two(r)}`;
}

function serverNow() {
  return desk ? desk.now + (Date.now() - deskAt) / 1000 : 0;
}

function setOptions(select, items, keep) {
  const before = keep ? select.value : null;
  select.replaceChildren(...items.map(([value, text]) => {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    return o;
  }));
  if (before && items.some(([v]) => v === before)) select.value = before;
}

function fillKv(dl, entries) {
  dl.replaceChildren();
  for (const [k, v] of entries) {
    if (v === null || v === undefined || v === "") continue;
    const dt = document.createElement("dt");
    dt.textContent = k.replaceAll("_", " ");
    const dd = document.createElement("dd");
    dd.textContent = String(v);
    dl.append(dt, dd);
  }
}

function render() {
  const st = desk.state;
  const pill = $("state");
  pill.dataset.status = st.status;
  let name = STATUS_NAMES[st.status] || st.status;
  if (st.status === "paused" || st.status === "not_ready") name += ` (${st.reason})`;
  $("state-name").textContent = name;
  tick();

  const loggedIn = st.status !== "logged_out";
  const busy = ["reserved", "ringing", "on_call"].includes(st.status);
  $("login").disabled = loggedIn;
  $("logout").disabled = !loggedIn;
  $("ready").disabled = !loggedIn || st.status === "available" || busy || st.disposition_due;
  $("pause").disabled = !loggedIn || st.status === "paused";
  setOptions($("pause-reason"), desk.pause_reasons.map((r) => [r.code, r.name]), true);
  const pending = $("pending");
  pending.hidden = !st.pending;
  pending.textContent = st.pending ? `${st.pending === "pause" ? "Pause" : "Log out"} after this call (${st.pending_reason || ""}).` : "";

  const call = desk.call;
  $("no-call").hidden = !!call;
  $("pop").hidden = !call;
  if (call) renderCall(call);
  const connected = call && call.stage === "connected" && st.status === "on_call";
  $("during").hidden = !connected;
  const held = !!(connected && call.held);
  $("hold").textContent = held ? "Resume call" : "Hold";
  $("hold").setAttribute("aria-pressed", held ? "true" : "false");
  $("held-note").hidden = !held;
  $("transfer-go").disabled = held;
  $("pci").hidden = !desk.pci;
  if (!connected) pciPaused = false;
  $("pci").textContent = pciPaused ? "Resume recording" : "Pause recording (card data)";
  renderTransferTargets();
  renderCallback(call);
  renderWrap(call, st);
  renderPreview();
}

function renderCall(call) {
  const stage = $("stage");
  stage.dataset.stage = call.stage;
  stage.textContent = call.held && call.stage === "connected" ? "On hold" : (STAGE_NAMES[call.stage] || call.stage);
  const customer = call.customer && call.customer.found ? call.customer : null;
  const caller = call.caller.name || (customer && customer.name) || "Unknown caller";
  $("caller").textContent = caller;
  $("caller-number").textContent = call.caller.number || "";
  $("queue").textContent = call.campaign ? `${call.campaign.name} (${call.queue.name})` : call.queue.name;
  $("waited").textContent = secondsText(call.waited_seconds);
  $("did").textContent = call.did ? (call.line ? `${call.did} · ${call.line}` : call.did) : "-";
  $("call-id").textContent = call.call_id;
  if (customer) {
    fillKv($("customer"), [["name", customer.name], ["account", customer.account], ["tier", customer.tier],
      ...Object.entries(customer.data || {})]);
  } else {
    const why = call.customer ? { not_found: "not in the directory", timeout: "directory did not answer", error: "directory unavailable" }[call.customer.outcome] || call.customer.outcome : "no lookup";
    fillKv($("customer"), [["record", why]]);
  }
  fillKv($("collected"), Object.entries(call.collected || {}));
  const path = $("ivr-path");
  path.replaceChildren(...(call.ivr_path || []).map((step) => {
    const li = document.createElement("li");
    li.textContent = step.node;
    li.title = [step.type, step.outcome].filter(Boolean).join(": ");
    if (step.input) {
      const keyed = document.createElement("span");
      keyed.className = "out";
      keyed.textContent = ` (${step.input})`;
      li.append(keyed);
    }
    return li;
  }));
  const body = $("recent").tBodies[0];
  body.replaceChildren(...(call.recent_calls || []).map((r) => {
    const tr = document.createElement("tr");
    const when = new Date(r.started_at * 1000).toLocaleString([], { dateStyle: "short", timeStyle: "short" });
    for (const text of [when, r.queue || "-", r.agent_id || "-", r.outcome || "-", r.disposition_label || r.disposition || "-"]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    if (r.notes) {
      const note = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = 5;
      td.className = "notes";
      td.textContent = r.notes;
      note.append(td);
      return [tr, note];
    }
    return [tr];
  }).flat());
  $("recent").hidden = !(call.recent_calls || []).length;
  $("history-note").textContent = call.history === "unavailable"
    ? "The call history is unavailable right now."
    : ((call.recent_calls || []).length ? "" : "No earlier calls from this number.");
}

function renderTransferTargets() {
  const kind = $("transfer-kind").value;
  setOptions($("transfer-agent"), desk.transfer.agents.map((a) => [a.extension, `${a.name} · ${(STATUS_NAMES[a.status] || a.status).toLowerCase()}`]), true);
  setOptions($("transfer-queue"), desk.transfer.queues.map((q) => [q.id, q.name]), true);
  $("transfer-agent").hidden = kind !== "agent";
  $("transfer-queue").hidden = kind !== "queue";
  $("transfer-number").hidden = kind !== "number";
  $("transfer-attended").disabled = kind === "queue";
  if (kind === "queue") $("transfer-attended").checked = false;
}

let callbackFor = null;
function renderCallback(call) {
  const show = !!call && call.stage !== "offered";
  $("callback").hidden = !show;
  if (show && callbackFor !== call.call_id) {
    callbackFor = call.call_id;
    $("callback-number").value = call.caller.number || "";
  }
}

let wrapFor = null;
function renderWrap(call, st) {
  const show = call && (st.status === "wrap_up" || st.status === "on_call" || st.disposition_due) && call.stage !== "offered";
  $("wrap").hidden = !show;
  if (!show) return;
  const codes = call.dispositions || [];
  const items = codes.map((c) => [c.code, c.label]);
  if (codes.length) items.unshift(["", "Choose a disposition"]);
  else items.unshift(["", "(no codes for this queue)"]);
  setOptions($("disposition-code"), items, wrapFor === call.call_id);
  $("disposition-required").textContent = call.disposition_required ? "(required)" : "(optional)";
  $("disposition-save").textContent = st.status === "on_call" ? "Save disposition" : "Save and finish";
  if (wrapFor !== call.call_id) {
    wrapFor = call.call_id;
    $("notes").value = "";
    if (st.status === "wrap_up") $("disposition-code").focus();
  }
}

function tick() {
  if (!desk) return;
  const now = serverNow();
  const st = desk.state;
  $("state-time").textContent = secondsText(now - st.since);
  if (st.status === "wrap_up" && st.wrap_up_until) {
    $("wrap-time").textContent = `${secondsText(st.wrap_up_until - now)} left`;
  } else {
    $("wrap-time").textContent = "";
  }
}
setInterval(tick, 1000);

// ---------------------------------------------------------------------------- actions
const me = () => `/api/agents/${encodeURIComponent(session.agent_id)}`;
const callId = () => (desk && desk.call ? desk.call.call_id : null);

$("login").addEventListener("click", () => act("Log in", () => api("POST", `${me()}/login`)));
$("logout").addEventListener("click", () => act("Log out", () => api("POST", `${me()}/logout`)));
$("ready").addEventListener("click", () => act("Ready", () => api("POST", `${me()}/resume`)));
$("pause").addEventListener("click", () =>
  act("Pause", () => api("POST", `${me()}/pause`, { reason: $("pause-reason").value })));

$("pci").addEventListener("click", () => act("Recording", async () => {
  const id = callId();
  if (!id) throw new Error("no call");
  await api("POST", `/api/calls/${encodeURIComponent(id)}/${pciPaused ? "pci_resume" : "pci_pause"}`);
  pciPaused = !pciPaused;
  say(pciPaused ? "Recording paused: read the card details now." : "Recording resumed.", "ok");
}));

$("hold").addEventListener("click", () => act("Hold", async () => {
  const id = callId();
  if (!id) throw new Error("no call");
  const held = !!(desk.call && desk.call.held);
  await api("POST", `/api/calls/${encodeURIComponent(id)}/${held ? "unhold" : "hold"}`);
  say(held ? "Back with the caller." : "The caller is on hold.", "ok");
}));

$("transfer-kind").addEventListener("change", () => renderTransferTargets());
$("transfer").addEventListener("submit", (e) => {
  e.preventDefault();
  act("Transfer", async () => {
    const id = callId();
    if (!id) throw new Error("no call");
    const kind = $("transfer-kind").value;
    const attended = $("transfer-attended").checked;
    let body;
    if (kind === "queue") body = { queue: $("transfer-queue").value };
    else if (kind === "agent") body = { number: $("transfer-agent").value, attended };
    else body = { number: $("transfer-number").value.replace(/[^0-9+*#]/g, ""), attended };
    await api("POST", `/api/calls/${encodeURIComponent(id)}/transfer`, body);
    say(attended ? "Consulting: hang up your phone to complete the transfer." : "Transferred.", "ok");
  });
});

$("callback-form").addEventListener("submit", (e) => {
  e.preventDefault();
  act("Callback", async () => {
    const id = callId();
    if (!id) throw new Error("no call");
    const body = { minutes: Number($("callback-in").value) };
    const number = $("callback-number").value.replace(/[^0-9+*#]/g, "");
    if (number) body.number = number;
    const done = await api("POST", `/api/calls/${encodeURIComponent(id)}/callback`, body);
    const when = new Date(Date.now() + (done.at - serverNow()) * 1000);
    say(`Callback scheduled for ${when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}.`, "ok");
  });
});

$("disposition").addEventListener("submit", (e) => {
  e.preventDefault();
  act("Disposition", async () => {
    const id = callId();
    if (!id) throw new Error("no call");
    const body = { call_id: id, notes: $("notes").value };
    if ($("disposition-code").value) body.code = $("disposition-code").value;
    const done = await api("POST", `${me()}/disposition`, body);
    say(`Saved: ${done.label || "notes"}.`, "ok");
  });
});

// ---------------------------------------------------------------------------- preview dialling
function renderPreview() {
  const camps = desk.previews || [];
  $("preview").hidden = !camps.length;
  setOptions($("preview-campaign"), camps.map((c) => [c.id, c.name]), true);
  $("preview-contact").hidden = !previewHeld;
  if (previewHeld) {
    $("preview-name").textContent = previewHeld.name || "Contact";
    $("preview-phone").textContent = previewHeld.phone || "";
    fillKv($("preview-data"), Object.entries(previewHeld.data || {}));
  }
}
const campaignPath = () => `/api/campaigns/${encodeURIComponent($("preview-campaign").value)}/preview`;
$("preview-next").addEventListener("click", () => act("Preview", async () => {
  const held = await api("POST", `${campaignPath()}/next`, { agent_id: session.agent_id });
  previewHeld = held.contact ? held : null;
  if (!previewHeld) say("No contact to call in this campaign now.");
}));
$("preview-dial").addEventListener("click", () => act("Dial", async () => {
  await api("POST", `${campaignPath()}/dial`, { agent_id: session.agent_id, contact: previewHeld.contact });
  previewHeld = null;
}));
$("preview-skip").addEventListener("click", () => act("Skip", async () => {
  await api("POST", `${campaignPath()}/skip`, { agent_id: session.agent_id, contact: previewHeld.contact });
  previewHeld = null;
}));

// ---------------------------------------------------------------------------- start
fetch("/api/session").then(async (r) => {
  if (r.status === 200) await start(await r.json());
  else showSignin();
}).catch(() => showSignin());
