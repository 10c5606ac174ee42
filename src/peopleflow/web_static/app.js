// The store's page: plain JavaScript over the JSON endpoints (/api); no library, no build.
"use strict";

const token = new URLSearchParams(location.search).get("token");
let plan = null;

async function get(path, params = {}) {
  const query = new URLSearchParams(params);
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const answer = await fetch(path + (query.toString() ? "?" + query : ""), { headers });
  if (!answer.ok) throw new Error(path + ": " + answer.status);
  return answer.json();
}


function fy(y) { return plan.height - y; }  // floor y points up, SVG y points down

function drawFloor(svg) {
  svg.innerHTML = "";
  svg.setAttribute("viewBox", `0 0 ${plan.width} ${plan.height}`);
  for (const z of plan.zones) {
    const points = z.polygon.map(([x, y]) => `${x},${fy(y)}`).join(" ");
    el("polygon", { points, class: z.door ? "zone door" : "zone" }, svg);
    const cx = z.polygon.reduce((s, p) => s + p[0], 0) / z.polygon.length;
    const cy = z.polygon.reduce((s, p) => s + p[1], 0) / z.polygon.length;
    el("text", { x: cx, y: fy(cy), class: "zone-label", "text-anchor": "middle" }, svg, z.name);
  }
}

const asked = new URLSearchParams(location.search).get("period");  // a link to a period

function period() {
  if (asked && !document.getElementById("period").dataset.touched) return { period: asked };
  const kind = document.getElementById("period").value;
  const date = document.getElementById("period-date").value;
  const hour = String(document.getElementById("period-hour").value).padStart(2, "0");
  if (kind === "date" && date) return { period: "date:" + date };
  if (kind === "hour" && date) return { period: `hour:${date}T${hour}` };
  if (kind === "date" || kind === "hour") return { period: "today" };
  return { period: kind };
}

async function showNow() {
  const now = await get("api/people");
  const svg = document.getElementById("floor-now");
  drawFloor(svg);
  for (const p of now.people) {
    el("circle", { cx: p.x, cy: fy(p.y), r: 0.25, class: "person" }, svg);
    el("text", { x: p.x + 0.3, y: fy(p.y) - 0.3, class: "person-label" }, svg, String(p.id));
  }
  document.getElementById("now-age").textContent = now.at === null
    ? "(no frame yet)" : `${now.people.length} people, ${now.age_s} s ago`;
}

async function showHeat(params) {
  const heat = await get("api/heatmap", params);
  const canvas = document.getElementById("heat-canvas");
  canvas.width = heat.cols; canvas.height = heat.rows;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#f4f1ea"; ctx.fillRect(0, 0, heat.cols, heat.rows);
  const top = Math.max(1e-9, ...heat.cells.map((c) => c[2]));
  for (const [r, c, s] of heat.cells) {
    const v = Math.sqrt(s / top);
    ctx.fillStyle = `rgba(${Math.round(255 * v)}, ${Math.round(80 * (1 - v))}, 40, ${0.2 + 0.8 * v})`;
    ctx.fillRect(c, heat.rows - 1 - r, 1, 1);
  }
  canvas.style.imageRendering = "pixelated";
  drawFloor(document.getElementById("heat-zones"));
  document.getElementById("heat-total").textContent =
    `${heat.total_seconds.toFixed(0)} s of dwell in all (${heat.period.from} to ${heat.period.to})`;
  document.getElementById("heat-total").dataset.total = heat.total_seconds;
  document.getElementById("period-shown").textContent = `${heat.period.from} to ${heat.period.to}`;
}

async function showFlows(params) {
  const flows = await get("api/flows", params);
  const svg = document.getElementById("flow-map");
  drawFloor(svg);
  const most = Math.max(1, ...flows.transitions.map((t) => t.count));
  for (const t of flows.transitions) {
    const [x1, y1] = flows.zones[t.from], [x2, y2] = flows.zones[t.to];
    const width = 0.08 + 0.5 * t.count / most;
    const bend = 0.15;  // A->B and B->A curve apart
    const mx = (x1 + x2) / 2 - bend * (y2 - y1), my = (y1 + y2) / 2 + bend * (x2 - x1);
    el("path", { d: `M ${x1} ${fy(y1)} Q ${mx} ${fy(my)} ${x2} ${fy(y2)}`, class: "flow",
                 "stroke-width": width }, svg);
    el("text", { x: mx, y: fy(my), class: "flow-label" }, svg, String(t.count));
  }
}

function bars(svg, labels, values, title) {
  svg.innerHTML = "";
  const w = svg.clientWidth || 460, h = 200, pad = 28;
  svg.setAttribute("viewBox", `0 0 ${w} ${h + 20}`);
  const top = Math.max(1e-9, ...values);
  const step = (w - pad) / Math.max(1, values.length);
  values.forEach((v, i) => {
    const bh = (h - 10) * v / top;
    el("rect", { x: pad + i * step + 2, y: h - bh, width: Math.max(1, step - 4), height: bh,
                 class: "bar" }, svg).appendChild(el("title", {}, null, `${labels[i]}: ${v}`));
    el("text", { x: pad + i * step + step / 2, y: h + 14, class: "axis", "text-anchor": "middle" },
       svg, labels[i]);
  });
  el("text", { x: 0, y: 10, class: "axis" }, svg, title);
}

async function showDwell(params) {
  const dwell = await get("api/dwell", params);
  const zones = Object.keys(dwell.total_s);
  bars(document.getElementById("dwell-chart"), zones, zones.map((z) => Math.round(dwell.total_s[z])),
       "seconds");
  const hours = [...new Set(zones.flatMap((z) => Object.keys(dwell.by_hour_s[z] || {})))].sort(
    (a, b) => a - b);
  const table = document.getElementById("dwell-table");
  table.innerHTML = "<tr><th>zone</th>" + hours.map((h) => `<th>${h}h</th>`).join("") + "</tr>" +
    zones.map((z) => `<tr><td>${z}</td>` + hours.map(
      (h) => `<td>${Math.round((dwell.by_hour_s[z] || {})[h] || 0)}</td>`).join("") + "</tr>").join("");
}

async function showVisitors(params) {
  const v = await get("api/visitors", params);
  const hours = Object.keys(v.by_hour);
  bars(document.getElementById("visitors-chart"), hours.map((h) => h + "h"),
       hours.map((h) => v.by_hour[h]), "visitors");
  document.getElementById("visitors-total").textContent = `${v.total} in all`;
}

async function showCameras(params) {
  const c = await get("api/cameras", params);
  document.getElementById("camera-table").innerHTML =
    "<tr><th>camera</th><th>frames</th><th>frames/s</th><th>dropped</th><th>reconnects</th>" +
    "<th>last frame</th></tr>" + Object.entries(c.cameras).map(([name, r]) =>
      `<tr><td>${name}</td><td>${r.frames}</td><td>${r.fps}</td><td>${r.dropped}</td>` +
      `<td>${r.reconnects}</td><td>${r.last_frame_age_s === null ? "-" : r.last_frame_age_s + " s ago"}</td></tr>`
    ).join("");
  document.getElementById("gap-table").innerHTML = "<tr><th>camera</th><th>from</th><th>seconds</th></tr>" +
    c.gaps.map((g) => `<tr><td>${g.camera}</td><td>${new Date(g.from_epoch * 1000).toLocaleString()}</td>` +
      `<td>${g.seconds}</td></tr>`).join("");
}

async function showPipeline() {
  const p = await get("api/pipeline");
  document.getElementById("pipeline-state").textContent = p.running ? `running ${p.elapsed_s} s` : "(not running)";
  document.getElementById("pipeline-table").innerHTML =
    "<tr><th>pipeline</th><th>tasks</th><th>busy</th><th>restarts</th></tr>" + p.pipelines.map((q) =>
      `<tr><td>${q.name}</td><td>${q.tasks.join(", ")}</td><td><span class="busy" style="width:${
        Math.round(60 * q.busy)}px"></span> ${Math.round(100 * q.busy)}%</td><td>${q.restarts}</td></tr>`).join("");
  document.getElementById("task-table").innerHTML =
    "<tr><th>task</th><th>items out</th><th>queue</th><th>dead letters</th><th>p99 s</th></tr>" +
    p.tasks.map((t) => `<tr><td>${t.name}</td><td>${t.items_out}</td><td>${t.queue}/${t.capacity}</td>` +
      `<td>${t.dead_letters}</td><td>${t.p99_s}</td></tr>`).join("");
}

async function showPeriod() {
  const params = period();
  await Promise.all([showHeat(params), showFlows(params), showDwell(params), showVisitors(params),
                     showCameras(params)]);
  document.body.dataset.loaded = "yes";
}

async function main() {
  plan = await get("api/store");
  document.getElementById("store-name").textContent = plan.store;
  document.getElementById("period-date").valueAsDate = new Date();
  if (asked) {  // the selector shows the period the link asked for
    const [kind, when] = asked.split(":");
    document.getElementById("period").value = kind;
    if (when) document.getElementById("period-date").value = when.slice(0, 10);
    if (kind === "hour" && when) document.getElementById("period-hour").value = Number(when.slice(11, 13));
  }
  if (token) document.getElementById("api-link").href = "api?token=" + encodeURIComponent(token);
  document.getElementById("period-form").addEventListener("submit", (e) => {
    e.preventDefault();
    document.getElementById("period").dataset.touched = "yes";
    showPeriod();
  });
  await Promise.all([showNow(), showPipeline(), showPeriod()]);
  setInterval(() => { showNow(); showPipeline(); }, 2000);
  setInterval(() => showCameras(period()), 10000);
}

main();
