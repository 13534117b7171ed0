// OptiLab lab board: snapshot, live seat changes over Server-Sent Events, heatmap and utilisation.
// The key (when the board is not public) lives in sessionStorage and travels as the X-API-Key
// header; the event stream is read with fetch() for that reason (EventSource cannot send headers).
"use strict";

const KEY_NAME = "optilab-board-key";
const LABELS = { free: "free", in_use: "in use", idle: "idle", locked: "locked", offline: "offline",
                 maintenance: "maintenance", unknown: "unknown" };
const GLYPHS = { free: "○", in_use: "■", idle: "◔", locked: "✕", offline: "—", maintenance: "⚠", unknown: "?" };
const DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
let known = new Map(); // system id -> state, to announce changes
let streamAbort = null;

function headers() {
  const key = sessionStorage.getItem(KEY_NAME);
  return key ? { "X-API-Key": key } : {};
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value; else node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function slug(name) { return "dept-" + name.replace(/[^A-Za-z0-9_-]/g, "_"); }

function setStatus(text) { document.getElementById("status").textContent = text; }

function announce(text) {
  const region = document.getElementById("announcer");
  region.append(el("p", { text }));
  while (region.childElementCount > 5) region.firstElementChild.remove();
}

function seatTile(system) {
  const state = system.state in LABELS ? system.state : "unknown";
  return el("li", { class: "seat seat-" + state, "data-id": String(system.id), "data-state": state },
    el("span", { class: "glyph", "aria-hidden": "true", text: GLYPHS[state] }),
    el("span", { class: "host", text: system.hostname || "#" + system.id }),
    el("span", { class: "state", text: LABELS[state] }));
}

function departmentSection(dept) {
  const id = slug(dept.name);
  let section = document.getElementById(id);
  if (!section) {
    section = el("section", { id, class: "department", "aria-labelledby": id + "-title", tabindex: "-1" },
      el("div", { class: "head" },
        el("h2", { id: id + "-title", text: dept.name }),
        el("p", { class: "free", "data-department": dept.name })),
      el("ul", { class: "grid", "aria-label": "Machines in " + dept.name }),
      el("div", { class: "reports" }));
    document.getElementById("departments").append(section);
    document.getElementById("jump").append(el("a", { href: "#" + id, text: dept.name }));
  }
  return section;
}

function render(snapshot) {
  const changes = [];
  for (const dept of snapshot.departments) {
    const section = departmentSection(dept);
    const free = section.querySelector(".free");
    free.replaceChildren(el("span", { class: "free-count", text: String(dept.free) }),
      document.createTextNode(` free of ${dept.machines}`));
    const grid = section.querySelector(".grid");
    grid.replaceChildren(...dept.systems.map(seatTile));
    for (const system of dept.systems) {
      const before = known.get(system.id);
      if (before !== undefined && before !== system.state) {
        changes.push(`${system.hostname} in ${dept.name} is now ${LABELS[system.state] || system.state}`);
      }
      known.set(system.id, system.state);
    }
  }
  if (changes.length > 3) announce(`${changes.length} machines changed state`);
  else changes.forEach(announce);
  const time = new Date(snapshot.generated_at);
  setStatus(`Live · updated ${time.toLocaleTimeString()}`);
}

function heatmapTable(heatmap) {
  const table = el("table", { class: "heatmap" },
    el("caption", { text: `Use by hour of week, last 7 days (${heatmap.timezone})` }));
  const head = el("tr", {}, el("th", { scope: "col", text: "" }));
  for (let hour = 0; hour < 24; hour += 1) head.append(el("th", { scope: "col", text: hour % 3 ? "" : String(hour) }));
  table.append(el("thead", {}, head));
  const body = el("tbody");
  for (let day = 0; day < 7; day += 1) {
    const row = el("tr", {}, el("th", { scope: "row", text: DAYS[day] }));
    for (let hour = 0; hour < 24; hour += 1) {
      const cell = heatmap.cells[day * 24 + hour];
      const value = cell.utilisation_ratio;
      const percent = value === null ? "no data" : Math.round(value * 100) + "% in use";
      const open = cell.open_ratio ? "" : ", closed";
      const td = el("td", { title: `${DAYS[day]} ${hour}:00 ${percent}${open}`,
                            "aria-label": `${DAYS[day]} ${hour}:00 ${percent}${open}` });
      if (value !== null) td.style.backgroundColor = `hsl(${120 - 120 * Math.min(1, value)}, 85%, ${15 + 40 * value}%)`;
      if (!cell.open_ratio) td.classList.add("closed");
      row.append(td);
    }
    body.append(row);
  }
  table.append(body);
  return table;
}

function utilisationChart(history) {
  const width = 480, height = 160, ns = "http://www.w3.org/2000/svg";
  const points = history.points.filter((p) => p.utilisation_ratio !== null);
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", String(width));
  svg.setAttribute("role", "img");
  const latest = points.length ? Math.round(points[points.length - 1].utilisation_ratio * 100) : null;
  const peak = points.length ? Math.round(Math.max(...points.map((p) => p.utilisation_ratio)) * 100) : null;
  const summary = points.length ? `Utilisation over the last 24 hours: latest ${latest}%, peak ${peak}%`
    : "Utilisation over the last 24 hours: no data";
  const title = document.createElementNS(ns, "title");
  title.textContent = summary;
  svg.append(title);
  if (points.length) {
    const t0 = new Date(points[0].t).getTime(), t1 = new Date(points[points.length - 1].t).getTime();
    const coords = points.map((p) => {
      const x = t1 > t0 ? 10 + (width - 20) * (new Date(p.t).getTime() - t0) / (t1 - t0) : width / 2;
      return `${x.toFixed(1)},${(height - 20 - (height - 40) * p.utilisation_ratio).toFixed(1)}`;
    });
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("class", "line");
    line.setAttribute("points", coords.join(" "));
    svg.append(line);
  }
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", "10");
  label.setAttribute("y", String(height - 4));
  label.textContent = summary;
  svg.append(label);
  return el("figure", {}, svg, el("figcaption", { class: "visually-hidden", text: summary }));
}

async function loadReports() {
  const response = await fetch("/board/reports", { headers: headers() });
  if (!response.ok) return;
  const body = await response.json();
  for (const dept of body.departments) {
    const section = document.getElementById(slug(dept.name));
    if (!section) continue;
    section.querySelector(".reports").replaceChildren(
      el("div", {}, el("h3", { text: "Busy hours" }), heatmapTable(dept.heatmap)),
      el("div", {}, el("h3", { text: "Utilisation, last 24 h" }), utilisationChart(dept.history)));
  }
}

function parseEvents(buffer, onEvent) {
  // SSE framing: events separated by a blank line; "event:" and "data:" fields; ":" comments.
  let index;
  while ((index = buffer.indexOf("\n\n")) >= 0) {
    const block = buffer.slice(0, index);
    buffer = buffer.slice(index + 2);
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (data.length) onEvent(name, data.join("\n"));
  }
  return buffer;
}

async function stream() {
  streamAbort = new AbortController();
  try {
    const response = await fetch("/board/events", { headers: headers(), signal: streamAbort.signal });
    if (response.status === 401) return askKey("The key was not accepted.");
    if (!response.ok || !response.body) throw new Error("stream " + response.status);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer = parseEvents(buffer + decoder.decode(value, { stream: true }), (name, data) => {
        if (name === "snapshot") render(JSON.parse(data));
      });
    }
  } catch (error) {
    setStatus("Connection lost — reconnecting…");
    await new Promise((resolve) => setTimeout(resolve, 3000));
  }
  setTimeout(stream, 500); // each stream is time-bounded by the server: reconnect
}

function askKey(message) {
  const dialog = document.getElementById("login");
  document.getElementById("login-error").textContent = message || "";
  if (!dialog.open) dialog.showModal();
  document.getElementById("key").focus();
}

async function start() {
  const response = await fetch("/board/data", { headers: headers() });
  if (response.status === 401) {
    setStatus("This board needs an API key.");
    return askKey(sessionStorage.getItem(KEY_NAME) ? "The key was not accepted." : "");
  }
  if (!response.ok) {
    setStatus("The API answered " + response.status + " — retrying…");
    setTimeout(start, 5000);
    return;
  }
  render(await response.json());
  stream();
  loadReports();
  setInterval(loadReports, 5 * 60 * 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_NAME, document.getElementById("key").value.trim());
    document.getElementById("login").close();
    start();
  });
  start();
});
