// Weir's dashboard: a single page over the REST API of the same port, refreshed every second.
// Plain JavaScript, no framework and nothing fetched from elsewhere (it is served from the
// binary). Every value from the API goes into the page as text, never as markup.
"use strict";

const REFRESH_MS = 1000;
/** Points kept per sparkline (one a refresh). */
const HISTORY = 120;
const SVG = "http://www.w3.org/2000/svg";

const ui = {
  /** Rates seen per vertex, for the sparklines: key `job/vertex` → [{t, inRate, outRate}]. */
  rates: new Map(),
  /** The stop button's first click arms it; the second, within 5 s, stops the job. */
  stopArmed: 0,
  busy: false,
};

// ---------------------------------------------------------------- small helpers

/** An element with attributes (`on…` keys become listeners) and children (strings are text). */
function el(tag, attrs, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const fmtInt = (n) => (n === undefined || n === null ? "–" : Math.round(n).toLocaleString("en-US"));
const fmtRate = (n) => (n === undefined || n === null ? "–" : n >= 100 ? fmtInt(n) : n.toFixed(1));
const fmtPct = (r) => (r === undefined || r === null ? "–" : `${Math.round(r * 100)}%`);

function fmtBytes(n) {
  if (n === undefined || n === null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function fmtDuration(ms) {
  if (ms === undefined || ms === null) return "–";
  if (ms < 1000) return `${ms} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(1)} s`;
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h}h ${m}m ${r}s` : `${m}m ${r}s`;
}

function fmtTime(ms) {
  if (ms === undefined || ms === null) return "–";
  if (ms <= -9e15) return "none yet";
  if (ms >= 9e15) return "end of input";
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

/** GET a JSON document of the API; an error names the path and the API's message. */
async function api(path) {
  const response = await fetch(path, { cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${path}: ${(body.errors || [response.statusText]).join("; ")}`);
  return body;
}

/** A mutating request with the token of the header's field; the API's answer. */
async function send(method, path, body) {
  const headers = { "content-type": "application/json" };
  const token = document.getElementById("token").value.trim();
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((answer.errors || [response.statusText]).join("; "));
  return answer;
}

function banner(text, error) {
  const b = document.getElementById("banner");
  b.hidden = false;
  b.className = error ? "error" : "";
  b.textContent = text;
}

// ---------------------------------------------------------------- routes

/** The route of the location's hash: `#/`, `#/taskmanagers`, `#/jobs/{id}[/tab|/vertices/{vid}]`. */
function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "jobs" && parts[1]) {
    if (parts[2] === "vertices" && parts[3]) return { page: "vertex", job: parts[1], vertex: parts[3] };
    return { page: "job", job: parts[1], tab: parts[2] || "overview" };
  }
  if (parts[0] === "taskmanagers") return { page: "workers" };
  return { page: "overview" };
}

const jobHref = (id, rest) => `#/jobs/${encodeURIComponent(id)}${rest ? `/${rest}` : ""}`;

/** Adds the job's link to the header once a job is known. */
async function navJobs() {
  const nav = document.getElementById("nav");
  if (nav.querySelector("[data-job]")) return;
  const { jobs } = await api("/jobs");
  if (jobs.length) nav.append(el("a", { href: jobHref(jobs[0].id), dataset: { job: jobs[0].id } }, `Job ${jobs[0].id}`));
}

async function render() {
  await navJobs();
  const r = route();
  let page;
  if (r.page === "job") page = await jobPage(r);
  else if (r.page === "vertex") page = await vertexPage(r);
  else if (r.page === "workers") page = await workersPage();
  else page = await overviewPage();
  const main = document.getElementById("main");
  const scroll = [window.scrollX, window.scrollY];
  main.replaceChildren(page);
  window.scrollTo(...scroll);
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === location.hash || (a.getAttribute("href") === "#/" && !location.hash));
  }
}

async function tick() {
  if (ui.busy) return;
  ui.busy = true;
  try {
    await render();
    document.getElementById("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = "yes";
  } catch (e) {
    document.getElementById("refreshed").textContent = `cannot reach the API: ${e.message}`;
  } finally {
    ui.busy = false;
  }
}

// ---------------------------------------------------------------- overview and workers

async function overviewPage() {
  const [overview, jobs] = await Promise.all([api("/overview"), api("/jobs")]);
  const card = (label, value) => el("div", { class: "card" }, el("div", { class: "value" }, value), el("div", { class: "label" }, label));
  return el("section", { id: "overview" },
    el("h1", {}, "Overview"),
    el("div", { class: "cards" },
      card("workers", overview.taskmanagers),
      card("jobs running", overview["jobs-running"]),
      card("finished", overview["jobs-finished"]),
      card("failed", overview["jobs-failed"]),
      card("stopped", overview["jobs-cancelled"]),
      card("version", overview["weir-version"])),
    el("h2", {}, "Jobs"),
    el("table", { id: "jobs" },
      el("thead", {}, el("tr", {}, el("th", {}, "job"), el("th", {}, "state"))),
      el("tbody", {}, jobs.jobs.map((j) => el("tr", {},
        el("td", {}, el("a", { href: jobHref(j.id) }, j.id)),
        el("td", {}, el("span", { class: `state ${j.status}` }, j.status)))))));
}

async function workersPage() {
  const { taskmanagers } = await api("/taskmanagers");
  return el("section", { id: "workers" },
    el("h1", {}, "Workers"),
    el("table", {},
      el("thead", {}, el("tr", {},
        ["worker", "attached", "address", "last heartbeat", "records in", "records out", "bytes sent", "memory", "CPU"]
          .map((h, i) => el("th", { class: i >= 4 ? "num" : undefined }, h)))),
      el("tbody", {}, taskmanagers.map((w) => el("tr", { dataset: { id: w.id } },
        el("td", {}, w.id),
        el("td", {}, w.attached ? "yes" : "no"),
        el("td", {}, w.address || "–"),
        el("td", {}, w["last-heartbeat-ago-ms"] === null ? "–" : `${fmtDuration(w["last-heartbeat-ago-ms"])} ago`),
        el("td", { class: "num" }, fmtInt(w["read-records"])),
        el("td", { class: "num" }, fmtInt(w["write-records"])),
        el("td", { class: "num" }, fmtBytes(w["exchange-bytes-out"])),
        el("td", { class: "num" }, fmtBytes(w["memory-bytes"])),
        el("td", { class: "num" }, w["cpu-cores"] === undefined || w["cpu-cores"] === null ? "–" : `${w["cpu-cores"].toFixed(2)} cores`))))));
}

// ---------------------------------------------------------------- a job

function jobHeader(job, tab) {
  const tabs = [["overview", "Overview"], ["checkpoints", "Checkpoints"], ["exceptions", "Exceptions"], ["watermarks", "Watermarks"]];
  const running = job.state === "running" || job.state === "restarting";
  return [
    el("h1", {}, job.name, " ",
      el("span", { class: `state ${job.state}`, id: "job-state" }, job.state),
      el("span", { class: "actions" },
        el("button", { id: "savepoint", disabled: !running, onclick: () => savepoint(job.jid) }, "Savepoint"),
        el("button", { id: "stop", class: "danger", disabled: !running, onclick: () => stop(job.jid) },
          Date.now() - ui.stopArmed < 5000 ? "Confirm stop" : "Stop with savepoint"))),
    el("div", { class: "muted" },
      `started ${fmtTime(job["start-time"])} · running ${fmtDuration(job.duration)} · run ${job.generation} · ${job.restarts} restart${job.restarts === 1 ? "" : "s"}`),
    el("div", { class: "tabs" }, tabs.map(([id, label]) =>
      el("a", { href: jobHref(job.jid, id === "overview" ? "" : id), class: id === tab ? "active" : undefined }, label))),
  ];
}

async function savepoint(id) {
  try {
    banner("Taking a savepoint…");
    const done = await send("POST", `/jobs/${encodeURIComponent(id)}/savepoints`, { "cancel-job": false });
    banner(`Savepoint ${done.status}: ${done.location}`);
  } catch (e) {
    banner(`No savepoint: ${e.message}`, true);
  }
}

async function stop(id) {
  if (Date.now() - ui.stopArmed >= 5000) {
    ui.stopArmed = Date.now();
    banner("Click “Confirm stop” within 5 s to stop the job with a savepoint.");
    tick();
    return;
  }
  ui.stopArmed = 0;
  try {
    banner("Stopping with a savepoint…");
    const done = await send("PATCH", `/jobs/${encodeURIComponent(id)}?mode=stop`);
    banner(`Stopped; savepoint ${done.status}: ${done.location}`);
  } catch (e) {
    banner(`Not stopped: ${e.message}`, true);
  }
}

/** Remembers each vertex's rates for its sparkline. */
function remember(job) {
  const now = job.now;
  for (const v of job.vertices) {
    const key = `${job.jid}/${v.id}`;
    const points = ui.rates.get(key) || [];
    const sum = (f) => v.subtasks.reduce((a, s) => a + (s[f] || 0), 0);
    if (!points.length || points[points.length - 1].t !== now) {
      points.push({ t: now, inRate: sum("read-records-per-second"), outRate: sum("write-records-per-second") });
    }
    while (points.length > HISTORY) points.shift();
    ui.rates.set(key, points);
  }
}

async function jobPage(r) {
  const job = await api(`/jobs/${encodeURIComponent(r.job)}`);
  remember(job);
  let body;
  if (r.tab === "checkpoints") body = await checkpointsTab(job);
  else if (r.tab === "exceptions") body = await exceptionsTab(job);
  else if (r.tab === "watermarks") body = watermarksTab(job);
  else body = [el("h2", {}, "Dataflow"), graph(job), legend(), el("h2", {}, "Vertices"), vertexTable(job)];
  return el("section", { id: "job", dataset: { job: job.jid } }, jobHeader(job, r.tab), body);
}

const rateOf = (v, f) => v.subtasks.reduce((a, s) => a + (s[f] || 0), 0);

function level(ratio) {
  return ratio < 0.1 ? "ok" : ratio <= 0.5 ? "low" : "high";
}

/** A vertex's fill: grey when back-pressured, else from green (idle) to red (busy), as Flink's. */
function fill(v) {
  const bp = level(v["backpressured-ratio"]);
  if (bp === "high") return "var(--bp-high)";
  if (bp === "low") return "var(--bp-low)";
  const busy = Math.min(1, Math.max(0, v["busy-ratio"] || 0));
  return `hsl(${Math.round(120 - 120 * busy)}, 65%, 82%)`;
}

/** The plan drawn as a DAG: vertices (chains) as boxes in columns by depth, edges labelled with
 * how records are partitioned. */
function graph(job) {
  const nodes = job.plan.nodes;
  const byId = new Map(job.vertices.map((v) => [v.id, v]));
  const depth = new Map();
  const depthOf = (id, seen = new Set()) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id)) return 0;
    seen.add(id);
    const node = nodes.find((n) => n.id === id);
    const d = node && node.inputs.length ? 1 + Math.max(...node.inputs.map((i) => depthOf(i.id, seen))) : 0;
    depth.set(id, d);
    return d;
  };
  const columns = [];
  for (const n of nodes) {
    const d = depthOf(n.id);
    (columns[d] = columns[d] || []).push(n.id);
  }
  const W = 240, H = 86, GX = 90, GY = 34, PAD = 20;
  const pos = new Map();
  columns.forEach((ids, c) => ids.forEach((id, row) => pos.set(id, { x: PAD + c * (W + GX), y: PAD + row * (H + GY) })));
  const rows = Math.max(1, ...columns.map((c) => (c ? c.length : 0)));
  const width = PAD * 2 + columns.length * W + (columns.length - 1) * GX;
  const height = PAD * 2 + rows * H + (rows - 1) * GY;
  const svg = el("svg:svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "job graph" },
    el("svg:defs", {}, el("svg:marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      el("svg:path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#57606a" }))));
  for (const n of nodes) {
    for (const input of n.inputs) {
      const a = pos.get(input.id), b = pos.get(n.id);
      if (!a || !b) continue;
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
      svg.append(el("svg:g", { class: "edge", dataset: { from: input.id, to: n.id, ship: input.ship_strategy } },
        el("svg:path", { d: `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`, "marker-end": "url(#arrow)" }),
        el("svg:text", { x: mx, y: (y1 + y2) / 2 - 6, "text-anchor": "middle" }, input.ship_strategy.toUpperCase())));
    }
  }
  for (const n of nodes) {
    const v = byId.get(n.id);
    const p = pos.get(n.id);
    if (!v || !p) continue;
    const bp = level(v["backpressured-ratio"]);
    const name = v.name.length > 34 ? `${v.name.slice(0, 33)}…` : v.name;
    const link = el("svg:a", { href: jobHref(job.jid, `vertices/${encodeURIComponent(v.id)}`) },
      el("svg:title", {}, `${v.name}\n${v.operators.map((o) => `${o.name} [${o.kind}]`).join("\n")}`),
      el("svg:rect", { x: p.x, y: p.y, width: W, height: H, rx: 6, fill: fill(v) }),
      el("svg:text", { x: p.x + 10, y: p.y + 20, class: "title" }, name),
      el("svg:text", { x: p.x + 10, y: p.y + 40, class: "rates" },
        `p=${v.parallelism} · in ${fmtRate(rateOf(v, "read-records-per-second"))}/s · out ${fmtRate(rateOf(v, "write-records-per-second"))}/s`),
      el("svg:text", { x: p.x + 10, y: p.y + 60, class: "ratios" },
        `busy ${fmtPct(v["busy-ratio"])} · back-pressured ${fmtPct(v["backpressured-ratio"])}`),
      el("svg:text", { x: p.x + 10, y: p.y + 78, class: "counts" }, `${fmtInt(v.metrics["read-records"])} in · ${fmtInt(v.metrics["write-records"])} out`));
    svg.append(el("svg:g", { class: `vertex bp-${bp}`, dataset: { id: v.id, backpressure: bp, busy: v["busy-ratio"].toFixed(3) } }, link));
  }
  return el("div", { id: "graph" }, svg);
}

function legend() {
  const item = (color, text) => el("span", {}, el("i", { style: `background:${color}` }), text);
  return el("div", { class: "legend" },
    item("hsl(120,65%,82%)", "idle"), item("hsl(60,65%,82%)", "half busy"), item("hsl(0,65%,82%)", "busy"),
    item("var(--bp-low)", "back-pressured 10–50 %"), item("var(--bp-high)", "back-pressured > 50 %"));
}

function vertexTable(job) {
  return el("table", { id: "vertices" },
    el("thead", {}, el("tr", {},
      ["vertex", "name", "parallelism", "records in", "records out", "in/s", "out/s", "busy", "back-pressure", "state", "dead letters", "late"]
        .map((h, i) => el("th", { class: i >= 2 ? "num" : undefined }, h)))),
    el("tbody", {}, job.vertices.map((v) => el("tr", { dataset: { id: v.id } },
      el("td", {}, el("a", { href: jobHref(job.jid, `vertices/${encodeURIComponent(v.id)}`) }, v.id)),
      el("td", {}, v.name),
      el("td", { class: "num" }, v.parallelism),
      el("td", { class: "num" }, fmtInt(v.metrics["read-records"])),
      el("td", { class: "num" }, fmtInt(v.metrics["write-records"])),
      el("td", { class: "num rate-in" }, fmtRate(rateOf(v, "read-records-per-second"))),
      el("td", { class: "num rate-out" }, fmtRate(rateOf(v, "write-records-per-second"))),
      el("td", { class: "num" }, fmtPct(v["busy-ratio"])),
      el("td", { class: "num", dataset: { level: level(v["backpressured-ratio"]) } },
        `${level(v["backpressured-ratio"])} (${fmtPct(v["backpressured-ratio"])})`),
      el("td", { class: "num state-size" }, fmtBytes(v["state-size"])),
      el("td", { class: "num" }, fmtInt(v.metrics["dead-letters"])),
      el("td", { class: "num" }, fmtInt(v.metrics["late-records"]))))));
}

// ---------------------------------------------------------------- a vertex

/** A line chart of the vertex's records per second (in and out) over the last refreshes. */
function sparkline(points) {
  const width = 640, height = 120, pad = 24;
  const max = Math.max(1, ...points.map((p) => Math.max(p.inRate, p.outRate)));
  // The points spread over the width (at least 30 slots, so the first few do not span it).
  const x = (i) => pad + (i * (width - 2 * pad)) / Math.max(30, points.length - 1);
  const y = (v) => height - pad - (v * (height - 2 * pad)) / max;
  const line = (f, color, cls) => el("svg:polyline", {
    class: cls, fill: "none", stroke: color, "stroke-width": 1.6,
    points: points.map((p, i) => `${x(i).toFixed(1)},${y(p[f]).toFixed(1)}`).join(" "),
  });
  return el("svg:svg", { class: "chart", id: "sparkline", width, height, viewBox: `0 0 ${width} ${height}` },
    el("svg:text", { x: pad, y: 14 }, `records per second (max ${fmtRate(max)}) — in (blue), out (orange)`),
    el("svg:line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, stroke: "#d0d7de" }),
    line("inRate", "#0969da", "in"), line("outRate", "#bc4c00", "out"));
}

async function vertexPage(r) {
  const job = await api(`/jobs/${encodeURIComponent(r.job)}`);
  remember(job);
  const v = job.vertices.find((x) => x.id === r.vertex);
  if (!v) throw new Error(`job ${r.job} has no vertex ${r.vertex}`);
  const points = ui.rates.get(`${job.jid}/${v.id}`) || [];
  return el("section", { id: "vertex", dataset: { id: v.id } },
    jobHeader(job, ""),
    el("h2", {}, `${v.id}: ${v.name}`),
    el("div", { class: "muted" }, `parallelism ${v.parallelism} · busy ${fmtPct(v["busy-ratio"])} · back-pressure ${level(v["backpressured-ratio"])} (${fmtPct(v["backpressured-ratio"])})`),
    el("h2", {}, "Throughput"),
    sparkline(points),
    el("h2", {}, "Operators"),
    el("table", { id: "operators" },
      el("thead", {}, el("tr", {}, ["operator", "kind", "records in", "records out", "dead letters", "late"].map((h, i) => el("th", { class: i >= 2 ? "num" : undefined }, h)))),
      el("tbody", {}, v.operators.map((o) => el("tr", {},
        el("td", {}, o.name), el("td", {}, o.kind),
        el("td", { class: "num" }, fmtInt(o.metrics["read-records"])),
        el("td", { class: "num" }, fmtInt(o.metrics["write-records"])),
        el("td", { class: "num" }, fmtInt(o.metrics["dead-letters"])),
        el("td", { class: "num" }, fmtInt(o.metrics["late-records"])))))),
    el("h2", {}, "Subtasks"),
    el("table", { id: "subtasks" },
      el("thead", {}, el("tr", {},
        ["subtask", "worker", "records in", "records out", "in/s", "out/s", "bytes in/s", "bytes out/s", "busy", "idle", "back-pressured", "source lag", "state", "checkpoint: align / sync / async", "input watermark", "output watermark"]
          .map((h, i) => el("th", { class: i >= 2 && i < 14 ? "num" : undefined }, h)))),
      el("tbody", {}, v.subtasks.map((s) => el("tr", { dataset: { subtask: s.subtask } },
        el("td", {}, s.subtask), el("td", {}, s["taskmanager-id"]),
        el("td", { class: "num" }, fmtInt(s["read-records"])),
        el("td", { class: "num" }, fmtInt(s["write-records"])),
        el("td", { class: "num" }, fmtRate(s["read-records-per-second"])),
        el("td", { class: "num" }, fmtRate(s["write-records-per-second"])),
        el("td", { class: "num" }, `${fmtBytes(Math.round(s["read-bytes-per-second"]))}/s`),
        el("td", { class: "num" }, `${fmtBytes(Math.round(s["write-bytes-per-second"]))}/s`),
        el("td", { class: "num" }, el("span", { class: "bar", style: `width:${Math.round(s["busy-ratio"] * 50)}px` }), " ", fmtPct(s["busy-ratio"])),
        el("td", { class: "num" }, fmtPct(s["idle-ratio"])),
        el("td", { class: "num" }, fmtPct(s["backpressured-ratio"])),
        el("td", { class: "num lag" }, s.lag === null || s.lag === undefined ? "–" : fmtInt(s.lag)),
        el("td", { class: "num" }, s.checkpoint ? fmtBytes(s.checkpoint["state-bytes"]) : "–"),
        el("td", { class: "num checkpoint-times" }, s.checkpoint
          ? `#${s.checkpoint.id}: ${fmtDuration(s.checkpoint["alignment-ms"])} / ${fmtDuration(s.checkpoint["sync-ms"])} / ${fmtDuration(s.checkpoint["async-ms"])}, wrote ${fmtBytes(s.checkpoint["checkpointed-bytes"])}`
          : "–"),
        el("td", {}, fmtTime(s["input-watermark"])),
        el("td", {}, fmtTime(s["output-watermark"])))))));
}

// ---------------------------------------------------------------- checkpoints, exceptions, watermarks

/** Bars of each checkpoint's duration and a line of its size, oldest to newest. */
function checkpointChart(history) {
  const width = 760, height = 160, pad = 30;
  const done = history.filter((c) => c.status === "completed").slice().reverse();
  const maxD = Math.max(1, ...done.map((c) => c.duration_ms));
  const maxS = Math.max(1, ...done.map((c) => c.state_size_bytes));
  const step = (width - 2 * pad) / Math.max(1, done.length);
  const y = (v, max) => height - pad - (v * (height - 2 * pad)) / max;
  return el("svg:svg", { class: "chart", id: "checkpoint-chart", width, height, viewBox: `0 0 ${width} ${height}` },
    el("svg:text", { x: pad, y: 16 }, `duration (bars, max ${fmtDuration(maxD)}) and size (line, max ${fmtBytes(maxS)}) of the last ${done.length} completed`),
    done.map((c, i) => el("svg:rect", {
      x: (pad + i * step + step * 0.15).toFixed(1), y: y(c.duration_ms, maxD).toFixed(1),
      width: Math.max(1, step * 0.7).toFixed(1), height: (height - pad - y(c.duration_ms, maxD)).toFixed(1), fill: "#54aeff",
    }, el("svg:title", {}, `#${c.id}: ${fmtDuration(c.duration_ms)}, ${fmtBytes(c.state_size_bytes)}`))),
    el("svg:polyline", {
      fill: "none", stroke: "#bc4c00", "stroke-width": 1.6,
      points: done.map((c, i) => `${(pad + (i + 0.5) * step).toFixed(1)},${y(c.state_size_bytes, maxS).toFixed(1)}`).join(" "),
    }));
}

async function checkpointsTab(job) {
  const [c, config] = await Promise.all([
    api(`/jobs/${encodeURIComponent(job.jid)}/checkpoints`),
    api(`/jobs/${encodeURIComponent(job.jid)}/checkpoints/config`),
  ]);
  const latest = c.latest.completed;
  const card = (label, value) => el("div", { class: "card" }, el("div", { class: "value" }, value), el("div", { class: "label" }, label));
  return [
    el("div", { class: "cards", id: "checkpoint-counts" },
      card("completed", fmtInt(c.counts.completed)), card("failed", fmtInt(c.counts.failed)),
      card("restored", fmtInt(c.counts.restored)),
      card("latest", latest ? `#${latest.id}` : "–"),
      card("end to end (avg)", fmtDuration(Math.round(c.summary.end_to_end_duration.avg))),
      card("size (avg)", fmtBytes(Math.round(c.summary.state_size.avg)))),
    el("div", { class: "muted", style: "margin-top:8px" }, config.enabled
      ? `every ${fmtDuration(config.interval)} · ${config.mode} · ${config.incremental ? "incremental" : "full"} · timeout ${fmtDuration(config.timeout)} · keeps ${config.retained} · ${config.storage}`
      : "checkpoints are off for this job"),
    el("h2", {}, latest ? `Per operator (#${latest.id})` : "Per operator"),
    el("table", { id: "checkpoint-operators" },
      el("thead", {}, el("tr", {}, ["operator", "state", "subtasks with state", "acknowledged after"].map((h, i) => el("th", { class: i ? "num" : undefined }, h)))),
      el("tbody", {}, (latest ? latest.operators : []).map((o) => el("tr", { dataset: { uid: o.uid } },
        el("td", {}, o.uid), el("td", { class: "num" }, fmtBytes(o.state_size_bytes)),
        el("td", { class: "num" }, o.subtasks_with_state), el("td", { class: "num" }, fmtDuration(o.acknowledged_ms)))))),
    el("h2", {}, "History"),
    checkpointChart(c.history),
    el("table", { id: "checkpoint-history" },
      el("thead", {}, el("tr", {}, ["id", "kind", "status", "triggered", "duration", "size", "where / why"].map((h, i) => el("th", { class: i === 4 || i === 5 ? "num" : undefined }, h)))),
      el("tbody", {}, c.history.map((r) => el("tr", { dataset: { id: r.id, status: r.status } },
        el("td", {}, `#${r.id}`), el("td", {}, r.savepoint ? "savepoint" : "checkpoint"),
        el("td", {}, r.status), el("td", {}, fmtTime(r.trigger_timestamp_ms)),
        el("td", { class: "num" }, fmtDuration(r.duration_ms)), el("td", { class: "num" }, fmtBytes(r.state_size_bytes)),
        el("td", {}, r.path || r.failure || ""))))),
  ];
}

async function exceptionsTab(job) {
  const { entries } = await api(`/jobs/${encodeURIComponent(job.jid)}/exceptions`);
  if (!entries.length) return el("p", { id: "exceptions", class: "muted" }, "No failures.");
  return el("ol", { id: "exceptions", class: "exceptions" }, entries.map((e) => el("li", {},
    el("div", {}, el("strong", {}, fmtTime(e.timestamp_ms)), el("span", { class: "muted" }, ` · ended run ${e.generation}`)),
    el("pre", {}, e.message))));
}

function watermarksTab(job) {
  return el("table", { id: "watermarks" },
    el("thead", {}, el("tr", {}, ["vertex", "subtask", "input watermark", "output watermark", "behind now"].map((h) => el("th", {}, h)))),
    el("tbody", {}, job.vertices.flatMap((v) => v.subtasks.map((s) => {
      const w = s["output-watermark"] ?? s["input-watermark"];
      const behind = w === undefined || w === null || Math.abs(w) > 9e15 ? "–" : fmtDuration(Math.max(0, job.now - w));
      return el("tr", {},
        el("td", {}, `${v.id} ${v.name}`), el("td", {}, s.subtask),
        el("td", {}, fmtTime(s["input-watermark"])), el("td", {}, fmtTime(s["output-watermark"])), el("td", {}, behind));
    }))));
}

// ---------------------------------------------------------------- start

document.getElementById("token").value = sessionStorage.getItem("weir-token") || "";
document.getElementById("token").addEventListener("change", (e) => sessionStorage.setItem("weir-token", e.target.value));
window.addEventListener("hashchange", tick);
tick();
setInterval(tick, REFRESH_MS);
