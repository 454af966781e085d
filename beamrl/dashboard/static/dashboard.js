// beamrl dashboard: renders what the server pushes over /ws. No dependencies.
// Copyright the beamrl authors, Apache-2.0 (see LICENSE.txt next to this file).
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token");
const MAX_POINTS = 4000; // per series, in the page; thinned by half when over
const HIGHLIGHT_MS = 5000;
const CHARTS = [
  { id: "return", title: "Episode return", series: [
    ["return", "dots", "#8fb3c9", "episode return"],
    ["return_mean", "line", "#1f6feb", "moving mean (100)"],
    ["eval_return", "points", "#cf222e", "greedy eval return"]] },
  { id: "success", title: "Greedy success rate", series: [["eval_success", "points", "#1a7f37", "success rate"]] },
  { id: "speed", title: "Env steps/s", series: [["steps_per_s", "line", "#8250df", "steps/s"]] },
  { id: "epsilon", title: "Exploration ε", series: [["epsilon", "line", "#9a6700", "epsilon"]] },
];
const TITLES = { // a trainer's own scalars: series "name" or "group/part" get a chart per name or group
  param_lag: "Actor parameter lag (writes behind the shared parameters)", loss: "Loss", replay_size: "Replay size",
};
const COLORS = ["#1f6feb", "#cf222e", "#1a7f37", "#8250df", "#9a6700", "#0598bc", "#bf3989"];

const state = {
  cluster: [], events: [], points: {}, marks: [], run: {}, watch: null,
  allowControl: false, closed: new Set(), highlight: new Map(),
};

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// -- connection ------------------------------------------------------------------------

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const query = TOKEN ? `?token=${encodeURIComponent(TOKEN)}` : "";
  const ws = new WebSocket(`${proto}//${location.host}/ws${query}`);
  const conn = document.getElementById("conn");
  ws.onopen = () => { conn.textContent = "live"; conn.className = "badge status-up"; conn.dataset.connected = "true"; };
  ws.onclose = () => {
    conn.textContent = "disconnected: retrying"; conn.className = "badge status-down"; conn.dataset.connected = "false";
    setTimeout(connect, 1000);
  };
  ws.onmessage = (msg) => receive(JSON.parse(msg.data));
}

function receive(msg) {
  if (msg.type === "hello") {
    document.getElementById("title").textContent = `node ${msg.node}`;
    state.allowControl = msg.allow_control;
    document.getElementById("control-mode").textContent = msg.allow_control ? "control on" : "read-only";
    state.events = msg.events.slice();
    state.points = {}; state.marks = []; state.run = {};
    if (msg.learning) addLearning(msg.learning);
  } else {
    state.events.push(...msg.events);
    if (state.events.length > 500) state.events.splice(0, state.events.length - 500);
    const now = Date.now();
    for (const ev of msg.events) {
      if (ev.key) state.highlight.set(ev.key, now + HIGHLIGHT_MS);
      if (ev.name) state.highlight.set(`${ev.node}:${ev.name}`, now + HIGHLIGHT_MS);
    }
    if (msg.learning) addLearning(msg.learning);
  }
  state.cluster = msg.cluster;
  state.watch = msg.watch;
  render();
}

function addLearning(learning) {
  state.run = learning.run || state.run;
  for (const [name, points] of Object.entries(learning.points || {})) {
    let series = state.points[name] || (state.points[name] = []);
    series.push(...points);
    if (series.length > MAX_POINTS) state.points[name] = series.filter((_, i) => i % 2 === 0);
  }
  state.marks.push(...(learning.marks || []));
}

// -- cluster --------------------------------------------------------------------------------

function isHighlighted(node, entry, now) {
  const a = entry.key && state.highlight.get(entry.key);
  const b = entry.name && state.highlight.get(`${node}:${entry.name}`);
  return (a && a > now) || (b && b > now);
}

function rowHtml(node, entry, now) {
  const rate = entry.rate == null ? "" : `${entry.rate.toFixed(1)}/s`;
  const restarts = entry.restarts == null ? "" : entry.restarts;
  const buttons = state.allowControl && entry.key
    ? `<span><button data-action="stop" data-pid="${esc(entry.key)}">stop</button>` +
      `<button data-action="kill" data-pid="${esc(entry.key)}">kill</button></span>` : "<span></span>";
  const label = entry.name ? `${esc(entry.name)} <span class="cls">${esc(entry.cls)}</span>` : esc(entry.cls);
  const cls = `row${entry.key ? "" : " dead"}${isHighlighted(node, entry, now) ? " highlight" : ""}`;
  return `<div class="${cls}" data-node="${esc(node)}" data-name="${esc(entry.name || "")}" data-key="${esc(entry.key || "")}">` +
    `<span class="label">${label}</span><span class="pid" title="${esc(entry.pid || "")}">${esc(entry.pid || "(down)")}</span>` +
    `<span class="num restarts" title="restarts">${restarts}</span><span class="num mailbox" title="mailbox">${entry.mailbox}</span>` +
    `<span class="num rate" title="messages handled per second">${rate}</span>${buttons}</div>`;
}

function entryHtml(node, entry, now) {
  if (!entry.children.length) return rowHtml(node, entry, now);
  const id = `${node}:${entry.name || entry.key}`;
  const open = state.closed.has(id) ? "" : " open";
  const kids = entry.children.map((c) => entryHtml(node, c, now)).join("");
  return `<details class="proc" data-tree-id="${esc(id)}"${open}><summary>${rowHtml(node, entry, now)}</summary>` +
    `<div class="kids">${kids}</div></details>`;
}

function renderCluster(now) {
  const head = '<div class="row head"><span>process</span><span>pid</span><span class="num">restarts</span>' +
    '<span class="num">mailbox</span><span class="num">msgs/s</span><span></span></div>';
  const html = state.cluster.map((n) => {
    const age = n.age == null ? "never answered" : `heartbeat ${n.age.toFixed(1)} s ago`;
    const trees = n.tree.map((e) => entryHtml(n.name, e, now)).join("");
    const loose = n.loose.length
      ? `<details class="proc" open><summary><div class="row"><span class="label cls">processes outside any tree</span></div></summary>` +
        `<div class="kids">${n.loose.map((e) => rowHtml(n.name, e, now)).join("")}</div></details>` : "";
    return `<div class="node" data-node="${esc(n.name)}" data-status="${esc(n.status)}">` +
      `<div class="node-head"><span class="name">${esc(n.name)}</span>${n.self ? '<span class="muted">(this dashboard)</span>' : ""}` +
      `<span class="badge status-${esc(n.status)}">${esc(n.status)}</span><span class="muted">${esc(n.address || "client-only")}</span>` +
      `<span class="muted age">${age}</span></div>${n.status === "down" ? "" : head + trees + loose}</div>`;
  }).join("");
  document.getElementById("cluster").innerHTML = html || '<p class="muted">no nodes</p>';
}

function renderEvents() {
  const items = state.events.slice(-200).reverse().map((e) => {
    const at = new Date(e.time * 1000).toLocaleTimeString();
    return `<li data-kind="${esc(e.kind)}" data-key="${esc(e.key || "")}"><span class="muted">${at}</span> ` +
      `<span class="kind kind-${esc(e.kind)}">${esc(e.kind)}</span> <span class="muted">${esc(e.node)}</span> ${esc(e.text)}</li>`;
  });
  document.getElementById("events").innerHTML = items.join("") || '<li class="muted">nothing has happened yet</li>';
}

// -- learning ---------------------------------------------------------------------------------

function chartSpecs() {
  const absent = new Set(state.run.absent || []); // series this kind of run never has (a deep run: success rate)
  const specs = CHARTS.filter((c) => !c.series.every((s) => absent.has(s[0])));
  const known = new Set(specs.flatMap((c) => c.series.map((s) => s[0])));
  const extra = Object.keys(state.points).filter((n) => !known.has(n)).sort();
  const groups = new Map();
  for (const name of extra) {
    const group = name.includes("/") ? name.split("/")[0] : name;
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push(name);
  }
  for (const [group, names] of groups) {
    specs.push({ id: `x-${group}`, title: TITLES[group] || group.replace(/_/g, " "),
      series: names.map((n, i) => [n, "line", COLORS[i % COLORS.length], n]) });
  }
  return specs;
}

function ensureChart(spec) {
  let box = document.getElementById(`box-${spec.id}`);
  if (!box) {
    box = document.createElement("div");
    box.className = "chart"; box.id = `box-${spec.id}`;
    const legend = spec.series.map((s) => `<span><i style="background:${s[2]}"></i>${esc(s[3])}</span>`).join("");
    box.innerHTML = `<div><b>${esc(spec.title)}</b></div><canvas id="chart-${spec.id}" data-points="0"></canvas>` +
      `<div class="legend">${legend}</div>`;
    document.getElementById("charts").appendChild(box);
  }
  return box.querySelector("canvas");
}

function drawChart(canvas, spec) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 400, h = canvas.clientHeight || 160;
  if (canvas.width !== w * ratio) { canvas.width = w * ratio; canvas.height = h * ratio; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const all = spec.series.map((s) => state.points[s[0]] || []);
  const count = all.reduce((n, p) => n + p.length, 0);
  canvas.dataset.points = String(count);
  ctx.font = "11px sans-serif"; ctx.fillStyle = "#6b7785";
  if (!count) { ctx.fillText("waiting for data…", 10, h / 2); return; }
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const pts of all) for (const [x, y] of pts) {
    if (y == null) continue;
    x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
  }
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y1 += 0.5; y0 -= 0.5; }
  const L = 48, R = 8, T = 8, B = 18;
  const px = (x) => L + (x - x0) / (x1 - x0) * (w - L - R);
  const py = (y) => T + (1 - (y - y0) / (y1 - y0)) * (h - T - B);
  ctx.strokeStyle = "#dde3ea"; ctx.strokeRect(L, T, w - L - R, h - T - B);
  ctx.fillText(fmt(y1), 2, T + 9); ctx.fillText(fmt(y0), 2, h - B);
  ctx.fillText(fmt(x0), L, h - 4); ctx.textAlign = "right"; ctx.fillText(fmt(x1), w - R, h - 4);
  ctx.textAlign = "center"; ctx.fillText("episode", (L + w - R) / 2, h - 4); ctx.textAlign = "left";
  ctx.save(); ctx.setLineDash([2, 3]); ctx.strokeStyle = "rgba(207,34,46,.7)"; ctx.fillStyle = "#cf222e";
  const labels = new Map(); // one label per x, as in curve.png
  for (const m of state.marks) {
    if (m.x < x0 || m.x > x1) continue;
    labels.set(m.x, labels.has(m.x) ? `${labels.get(m.x)}; ${m.text}` : m.text);
  }
  let lastX = -Infinity, row = 0;
  for (const [x, text] of [...labels].sort((a, b) => a[0] - b[0])) {
    ctx.beginPath(); ctx.moveTo(px(x), T); ctx.lineTo(px(x), h - B); ctx.stroke();
    row = px(x) - lastX < 160 ? (row + 1) % 4 : 0; // labels close together go one under the other
    lastX = px(x);
    const fits = px(x) + 3 + ctx.measureText(text).width <= w - R; // else to the left of its line
    ctx.textAlign = fits ? "left" : "right";
    ctx.fillText(text, fits ? px(x) + 3 : px(x) - 3, T + 10 + row * 12);
    ctx.textAlign = "left";
  }
  ctx.restore();
  spec.series.forEach(([name, style, color], i) => {
    const pts = all[i];
    ctx.strokeStyle = color; ctx.fillStyle = color;
    if (style === "line") {
      ctx.beginPath(); ctx.lineWidth = 1.5;
      pts.forEach(([x, y], j) => { if (y != null) (j ? ctx.lineTo(px(x), py(y)) : ctx.moveTo(px(x), py(y))); });
      ctx.stroke();
    } else {
      const r = style === "dots" ? 1 : 2.5;
      for (const [x, y] of pts) if (y != null) ctx.fillRect(px(x) - r / 2, py(y) - r / 2, r, r);
    }
  });
}

function fmt(v) {
  const a = Math.abs(v);
  if (a >= 10000) return `${(v / 1000).toFixed(0)}k`;
  if (a >= 100) return v.toFixed(0);
  return v.toFixed(a >= 10 ? 1 : 2);
}

function renderLearning() {
  const run = state.run;
  document.getElementById("run").textContent = run.algo
    ? `${run.algo} on ${run.env_id}${run.finished ? " (finished)" : ""}` : "(no trainer in this cluster)";
  const charts = document.getElementById("charts");
  charts.hidden = !run.algo && !Object.keys(state.points).length;
  if (charts.hidden) return;
  for (const spec of chartSpecs()) drawChart(ensureChart(spec), spec);
}

// -- watch ------------------------------------------------------------------------------------

function renderWatch() {
  const w = state.watch, text = document.getElementById("watch-text"), canvas = document.getElementById("watch-canvas");
  if (!w) { text.textContent = "no environment process found"; canvas.hidden = true; return; }
  document.getElementById("watch-label").textContent =
    `${w.env_id}: ${w.name || ""} ${w.pid} on ${w.node}, ${w.episodes} episodes, ${w.steps} steps`;
  const cartpole = Array.isArray(w.obs) && w.obs.length === 4 && (w.env_id || "").startsWith("CartPole");
  canvas.hidden = !cartpole;
  text.innerHTML = ansiHtml(w.text);
  if (cartpole) drawCartPole(canvas, w.obs);
}

const ANSI = { 30: "#000", 31: "#cf222e", 32: "#1a7f37", 33: "#9a6700", 34: "#1f6feb", 35: "#8250df", 36: "#0598bc", 37: "#888" };

function ansiHtml(text) { // gymnasium's text renderings colour with ANSI escapes (Taxi): keep the colours
  let open = false;
  return esc(text).replace(/\x1b\[([0-9;]*)m/g, (_, codes) => {
    const styles = [];
    for (const code of codes.split(";").map(Number)) {
      if (code === 1) styles.push("font-weight:bold");
      else if (ANSI[code]) styles.push(`color:${ANSI[code]}`);
      else if (ANSI[code - 10]) styles.push(`background:${ANSI[code - 10]};color:#fff`);
    }
    const close = open ? "</span>" : "";
    open = styles.length > 0;
    return close + (open ? `<span style="${styles.join(";")}">` : "");
  }) + (open ? "</span>" : "");
}

function drawCartPole(canvas, [x, , theta]) {
  const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height, scale = w / 4.8;
  ctx.clearRect(0, 0, w, h);
  const cx = w / 2 + x * scale, cy = h - 30;
  ctx.fillStyle = "#444"; ctx.fillRect(0, cy + 10, w, 2);
  ctx.fillStyle = "#1f6feb"; ctx.fillRect(cx - 25, cy - 10, 50, 20);
  ctx.strokeStyle = "#cf222e"; ctx.lineWidth = 6; ctx.beginPath(); ctx.moveTo(cx, cy - 10);
  ctx.lineTo(cx + Math.sin(theta) * 100, cy - 10 - Math.cos(theta) * 100); ctx.stroke();
}

// -- control ----------------------------------------------------------------------------------

async function control(action, pid) {
  const out = document.getElementById("control-result");
  const headers = { "Content-Type": "application/json" };
  if (TOKEN) headers["X-Beamrl-Token"] = TOKEN;
  const response = await fetch("api/control", { method: "POST", headers, body: JSON.stringify({ action, pid }) });
  const body = await response.json();
  out.textContent = body.ok ? `${action} ${body.pid}: done` : `refused: ${body.error}`;
}

document.addEventListener("click", (ev) => {
  const button = ev.target.closest("button[data-action]");
  if (!button) return;
  ev.preventDefault(); ev.stopPropagation();
  control(button.dataset.action, button.dataset.pid);
}, true);

document.addEventListener("toggle", (ev) => {
  const id = ev.target.dataset && ev.target.dataset.treeId;
  if (!id) return;
  if (ev.target.open) state.closed.delete(id); else state.closed.add(id);
}, true);

function render() {
  const now = Date.now();
  renderCluster(now);
  renderEvents();
  renderLearning();
  renderWatch();
}

connect();
