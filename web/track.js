// The public tracking page: loads the view, follows it live over graphql-transport-ws,
// reconnects with `after` after a network loss, and offers the actions the link allows.
"use strict";

const token = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const $ = (id) => document.getElementById(id);

const VIEW = `query Tracking($t: String!) { tracking(token: $t) {
  number status statusInfo { label color customerDescription }
  device { brand model imei serialNumber } problemReported diagnosis
  estimate { amount currency } approvedAmount { amount currency }
  parts { name quantity lineTotal { amount currency } }
  labourCost { amount currency } total { amount currency } finalCost { amount currency }
  warrantyExpiresAt
  timeline { status label color at note }
  comments { id fromCustomer authorName body at }
  rating { stars comment }
  shop { name phone email address }
  link { expiresAt canApprove canComment canRate }
  lastSequence
} }`;
const EVENTS = `subscription Follow($t: String!, $after: Int) {
  trackingEvents(token: $t, after: $after) { sequence type status statusInfo { label } }
}`;
const PAYLOAD = "userErrors { code message field }";

let lastSeq = 0;
let socket = null;
let stopped = false;
let retryDelay = 1000;
let reloadTimer = null;
let retryTimer = null;
let attempt = 0;
let lastStatus = null;
let shownEstimate = null;

async function gql(query, variables) {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query, variables }),
    referrerPolicy: "no-referrer",
  });
  return response.json();
}

const money = (m) => (m ? new Intl.NumberFormat(undefined, { style: "currency", currency: m.currency }).format(Number(m.amount)) : "");
const when = (iso) => new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
const day = (iso) => new Date(iso).toLocaleDateString(undefined, { dateStyle: "long" });

function show(id, visible) { $(id).hidden = !visible; }
function text(id, value) { $(id).textContent = value || ""; }

const PROBLEMS = {
  NOT_FOUND: ["Link not found", "This tracking link does not exist. Check that you opened the whole link, or ask the shop to send it again."],
  LINK_EXPIRED: ["Link expired", "This link has expired: access is no longer available. Ask the shop for a new link."],
  LINK_REVOKED: ["Link withdrawn", "The shop withdrew this link. Ask them for a new one."],
  RATE_LIMITED: ["Too many attempts", "Too many invalid links were opened from your connection. Try again later."],
};

function showProblem(code, message) {
  stopped = true;
  const [title, body] = PROBLEMS[code] || ["Something went wrong", message || "Please try again later."];
  text("problem-title", title);
  text("problem-text", body);
  show("problem", true);
  show("content", false);
  setLive("off", "Not available");
  if (socket) socket.close();
}

function setLive(state, label) {
  $("live").className = "live " + state;
  text("live-text", label);
}

function render(t) {
  document.title = `${t.number}: ${t.statusInfo.label}`;
  text("shop-name", t.shop.name);
  text("order-number", t.number);
  const badge = $("status-badge");
  badge.textContent = t.statusInfo.label;
  badge.style.background = `var(--${t.statusInfo.color})`;
  text("status-description", t.statusInfo.customerDescription);
  if (lastStatus && lastStatus !== t.status) text("announce", `Status changed: ${t.statusInfo.label}`);
  lastStatus = t.status;

  text("device", [t.device.brand, t.device.model].filter(Boolean).join(" "));
  show("imei-row", !!t.device.imei); text("imei", t.device.imei);
  show("serial-row", !!t.device.serialNumber); text("serial", t.device.serialNumber);
  text("problem-reported", t.problemReported);
  show("diagnosis-row", !!t.diagnosis); text("diagnosis", t.diagnosis);
  show("warranty-row", !!t.warrantyExpiresAt); if (t.warrantyExpiresAt) text("warranty", day(t.warrantyExpiresAt));

  const estimate = t.estimate || t.approvedAmount;
  shownEstimate = t.estimate ? t.estimate.amount : null;
  show("estimate-card", !!estimate);
  $("estimate-card").classList.toggle("highlight", t.link.canApprove);  // only while a decision is due
  text("estimate-amount", money(estimate));
  show("decision", t.link.canApprove);
  show("approved-line", !!t.approvedAmount);
  text("approved-line", t.approvedAmount ? `You approved ${money(t.approvedAmount)}.` : "");

  show("costs-card", !!t.parts);
  const parts = $("parts");
  parts.replaceChildren(...(t.parts || []).map((p) => {
    const row = document.createElement("tr");
    for (const [value, cls] of [[p.name, ""], [String(p.quantity), "num"], [money(p.lineTotal), "num"]]) {
      const cell = document.createElement("td");
      cell.textContent = value;
      if (cls) cell.className = cls;
      row.append(cell);
    }
    return row;
  }));
  text("labour", money(t.labourCost));
  text("total", money(t.total));
  show("final-row", !!t.finalCost); text("final", money(t.finalCost));

  $("timeline").replaceChildren(...t.timeline.map((entry) => {
    const item = document.createElement("li");
    item.style.setProperty("--c", `var(--${entry.color})`);
    const label = document.createElement("strong");
    label.textContent = entry.label;
    const at = document.createElement("span");
    at.className = "when";
    at.textContent = when(entry.at);
    item.append(label, at);
    if (entry.note) {
      const note = document.createElement("span");
      note.className = "note";
      note.textContent = entry.note;
      item.append(note);
    }
    return item;
  }));

  $("comments").replaceChildren(...t.comments.map((c) => {
    const item = document.createElement("li");
    if (c.fromCustomer) item.className = "mine";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = `${c.authorName} · ${when(c.at)}`;
    const body = document.createElement("span");
    body.textContent = c.body;
    item.append(who, body);
    return item;
  }));
  show("no-comments", t.comments.length === 0);
  show("comment-form", t.link.canComment);

  show("rating-card", t.link.canRate || !!t.rating);
  show("rating-form", t.link.canRate);
  show("rating-done", !!t.rating);
  if (t.rating) text("rating-done", `You rated us ${t.rating.stars} out of 5. Thank you!` + (t.rating.comment ? ` “${t.rating.comment}”` : ""));

  text("shop-name", t.shop.name);
  text("contact-name", t.shop.name);
  for (const [id, value, prefix] of [["contact-phone", t.shop.phone, "Phone: "], ["contact-email", t.shop.email, "Email: "], ["contact-address", t.shop.address, ""]]) {
    show(id, !!value);
    text(id, value ? prefix + value : "");
  }
  text("expires", `This link works until ${day(t.link.expiresAt)}.`);
  show("problem", false);
  show("content", true);
}

async function load() {
  const result = await gql(VIEW, { t: token });
  if (result.errors) {
    const error = result.errors[0];
    showProblem((error.extensions || {}).code, error.message);
    return false;
  }
  render(result.data.tracking);
  lastSeq = Math.max(lastSeq, result.data.tracking.lastSequence);
  return true;
}

function scheduleReload() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(load, 150);
}

function connect() {
  if (stopped) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/graphql`, "graphql-transport-ws");
  socket.onopen = () => socket.send(JSON.stringify({ type: "connection_init", payload: { shareToken: token } }));
  socket.onmessage = (message) => {
    const data = JSON.parse(message.data);
    if (data.type === "connection_ack") {
      retryDelay = 1000;
      setLive("on", "Live");
      socket.send(JSON.stringify({ id: "follow", type: "subscribe", payload: { query: EVENTS, variables: { t: token, after: lastSeq } } }));
    } else if (data.type === "ping") {
      socket.send(JSON.stringify({ type: "pong" }));
    } else if (data.type === "next") {
      if (data.payload.errors) {
        const error = data.payload.errors[0];
        showProblem((error.extensions || {}).code, error.message);
        return;
      }
      lastSeq = Math.max(lastSeq, data.payload.data.trackingEvents.sequence);
      scheduleReload();
    } else if (data.type === "error") {
      setLive("off", "Reconnecting…");
      socket.close();
    }
  };
  socket.onclose = (event) => {
    if (stopped) return;
    // also after 4403: the reload shows why if the link stopped working, else we reconnect
    reconnectLater();
  };
}

// Reload the view, then follow again from its lastSequence. While the network is down the
// reload fails: try again later (backing off), and at once when the browser is back online.
function reconnectLater(delay = retryDelay) {
  if (stopped) return;
  setLive("off", "Reconnecting…");
  clearTimeout(retryTimer);
  const mine = ++attempt;
  retryTimer = setTimeout(async () => {
    let loaded;
    try {
      loaded = await load();
    } catch {
      loaded = null;
    }
    if (mine !== attempt) return;  // a newer attempt took over
    if (loaded === null) reconnectLater();
    else if (loaded) connect();
  }, delay);
  retryDelay = Math.min(retryDelay * 2, 30000);
}

window.addEventListener("online", () => {
  if (socket && (socket.readyState === WebSocket.CLOSING || socket.readyState === WebSocket.CLOSED)) reconnectLater(0);
});

async function act(mutation, variables, button) {
  const error = $("form-error");
  error.hidden = true;
  if (button) button.disabled = true;
  try {
    const result = await gql(mutation, variables);
    const payload = result.data ? Object.values(result.data)[0] : null;
    const problem = result.errors ? result.errors[0] : payload && payload.userErrors[0];
    if (problem) {
      const code = (problem.extensions || {}).code || problem.code;
      if (PROBLEMS[code] && code !== "NOT_FOUND") { showProblem(code, problem.message); return false; }
      error.textContent = problem.message;
      error.hidden = false;
      await load();
      return false;
    }
    if (payload && payload.tracking) render(payload.tracking);
    return true;
  } finally {
    if (button) button.disabled = false;
  }
}

function wire() {
  $("approve").addEventListener("click", (e) =>
    // the amount shown is sent along: if staff changed it meanwhile the approval is refused
    act(`mutation($t: String!, $seen: Decimal) { trackingApprove(input: {token: $t, expectedEstimate: $seen}) { ${PAYLOAD} } }`,
      { t: token, seen: shownEstimate }, e.currentTarget).then(load));
  $("reject-open").addEventListener("click", () => { show("reject-form", true); $("reject-reason").focus(); });
  $("reject-cancel").addEventListener("click", () => show("reject-form", false));
  $("reject-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(`mutation($t: String!, $r: String) { trackingReject(input: {token: $t, reason: $r}) { ${PAYLOAD} } }`,
      { t: token, r: $("reject-reason").value || null }, e.submitter).then(load);
  });
  $("comment-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = $("comment-body");
    if (await act(`mutation($t: String!, $b: String!) { trackingCommentAdd(input: {token: $t, body: $b}) { ${PAYLOAD} } }`,
      { t: token, b: body.value }, e.submitter)) { body.value = ""; await load(); }
  });
  $("rating-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const chosen = document.querySelector('input[name="stars"]:checked');
    if (!chosen) { const error = $("form-error"); error.textContent = "Choose 1 to 5 stars."; error.hidden = false; return; }
    await act(`mutation($t: String!, $s: Int!, $c: String) { trackingRate(input: {token: $t, stars: $s, comment: $c}) { ${PAYLOAD} } }`,
      { t: token, s: Number(chosen.value), c: $("rating-comment").value || null }, e.submitter);
    await load();
  });
}

async function start() {
  wire();
  if (!(await load())) return;
  // a person opened the page (link previews do not run scripts)
  gql(`mutation($t: String!) { trackingViewRecord(input: {token: $t}) { recorded } }`, { t: token });
  connect();
}

start();
