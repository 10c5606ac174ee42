// Calibration by clicking: pairs of (pixel, floor point), the fit and its grid after each pair.
"use strict";

let store = null, pairs = [], pending = null, fitted = null;
let zones = [], drawing = null;  // the store's zones as edited; the polygon being clicked

const fy = (y) => store.height - y;
const camera = () => document.getElementById("camera").value;
const image = () => document.getElementById("frame");
function say(text) { document.getElementById("status").textContent = text; }

async function post(path, body) {
  const answer = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                     body: JSON.stringify(body) });
  return [answer.ok, await answer.json()];
}

function drawPlan() {
  const svg = document.getElementById("plan");
  svg.innerHTML = "";
  svg.setAttribute("viewBox", `0 0 ${store.width} ${store.height}`);
  for (const z of zones) {
    el("polygon", { points: z.polygon.map(([x, y]) => `${x},${fy(y)}`).join(" "),
                    class: z.door ? "zone door" : "zone" }, svg);
  }
  if (drawing) {
    el("polyline", { points: drawing.polygon.map(([x, y]) => `${x},${fy(y)}`).join(" "),
                     class: "zone drawing" }, svg);
  }
  pairs.forEach(([, , x, y], i) => {
    el("circle", { cx: x, cy: fy(y), r: 0.2, class: "person" }, svg);
    el("text", { x: x + 0.25, y: fy(y) - 0.25, class: "person-label" }, svg, String(i + 1));
  });
}

function drawFrame() {
  const img = image(), svg = document.getElementById("frame-marks");
  svg.innerHTML = "";
  if (!img.naturalWidth) return;
  svg.setAttribute("viewBox", `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
  for (const line of (fitted ? fitted.grid : [])) {
    el("polyline", { points: line.map(([u, v]) => `${u},${v}`).join(" "), class: "grid" }, svg);
  }
  const marks = pairs.map(([u, v]) => [u, v]).concat(pending ? [pending] : []);
  marks.forEach(([u, v], i) => {
    el("circle", { cx: u, cy: v, r: 6, class: "person" }, svg);
    el("text", { x: u + 8, y: v - 8, class: "pixel-label" }, svg, String(i + 1));
  });
}

function drawTable() {
  document.getElementById("pairs").innerHTML = "<tr><th>#</th><th>u</th><th>v</th><th>x m</th><th>y m</th><th>error m</th></tr>" +
    pairs.map(([u, v, x, y], i) => `<tr><td>${i + 1}</td><td>${u.toFixed(1)}</td><td>${v.toFixed(1)}</td>` +
      `<td>${x.toFixed(2)}</td><td>${y.toFixed(2)}</td><td class="error">${
        fitted ? fitted.errors_m[i].toFixed(2) : "-"}</td></tr>`).join("");
}

async function refit() {
  fitted = null;
  document.body.dataset.fitted = "pending";  // until this fit's answer is in
  document.body.dataset.pairs = String(pairs.length);
  if (pairs.length >= 4) {
    const [ok, answer] = await post("api/calibration/fit", {
      camera: camera(), pairs, frame: [image().naturalWidth, image().naturalHeight] });
    if (ok) { fitted = answer; say(`${pairs.length} pairs fitted`); } else { say(answer.error); }
  } else {
    say(`${pairs.length} pairs: 4 or more make a fit`);
  }
  drawFrame(); drawPlan(); drawTable();
  document.body.dataset.pairs = String(pairs.length);
  document.body.dataset.fitted = fitted ? "yes" : "no";
}

function frameClick(event) {
  const img = image(), box = img.getBoundingClientRect();
  pending = [(event.clientX - box.left) * img.naturalWidth / box.width,
             (event.clientY - box.top) * img.naturalHeight / box.height];
  say("now click the same point on the floor plan");
  drawFrame();
}

function drawZones() {
  document.getElementById("zones").innerHTML = "<tr><th>zone</th><th>corners</th><th>door</th></tr>" +
    zones.map((z) => `<tr><td>${z.name}</td><td>${z.polygon.length}</td><td>${z.door ? "yes" : ""}</td></tr>`).join("");
}

function planClick(event) {
  const svg = document.getElementById("plan");
  const p = svg.createSVGPoint(); p.x = event.clientX; p.y = event.clientY;
  const at = p.matrixTransform(svg.getScreenCTM().inverse());
  if (drawing) {
    const r = (v) => Math.round(v * 1000) / 1000;
    drawing.polygon.push([r(at.x), r(store.height - at.y)]);
    say(`${drawing.name}: ${drawing.polygon.length} corners`);
    drawPlan();
    return;
  }
  if (!pending) { say("first click the point in the camera's frame"); return; }
  // Rounded as the saved file keeps them (0.1 px, 1 mm): the fit shown is the fit saved.
  const r = (v, d) => Math.round(v * d) / d;
  pairs.push([r(pending[0], 10), r(pending[1], 10), r(at.x, 1000), r(store.height - at.y, 1000)]);
  pending = null;
  refit();
}

async function showCamera() {
  pairs = []; pending = null; fitted = null;
  const img = image();
  img.onload = () => {
    document.getElementById("frame-size").textContent = `${img.naturalWidth}x${img.naturalHeight}`;
    document.body.dataset.frame = "yes";
    refit();
  };
  img.src = "api/calibration/frame?camera=" + encodeURIComponent(camera()) + "&t=" + Date.now();
}

async function main() {
  store = await (await fetch("api/calibration")).json();
  document.getElementById("store-name").textContent = `${store.store}: calibrate a camera`;
  const select = document.getElementById("camera");
  for (const c of store.cameras) select.add(new Option(c.name, c.name));
  select.addEventListener("change", showCamera);
  image().addEventListener("click", frameClick);
  document.getElementById("frame-marks").addEventListener("click", frameClick);
  document.getElementById("plan").addEventListener("click", planClick);
  document.getElementById("undo").addEventListener("click", () => { pending ? pending = null : pairs.pop(); refit(); });
  document.getElementById("start-over").addEventListener("click", () => { pairs = []; pending = null; refit(); });
  document.getElementById("load").addEventListener("click", () => {
    pairs = store.cameras.find((c) => c.name === camera()).pairs.map((r) => r.slice());
    refit();
  });
  document.getElementById("save").addEventListener("click", async () => {
    if (!store.can_save) { say("saving needs a token: start the service with --token"); return; }
    const [ok, answer] = await post("api/calibration/save", { camera: camera(), pairs });
    say(ok ? `saved in ${answer.saved}: the service uses it when it next starts` : answer.error);
    document.body.dataset.saved = ok ? "yes" : "no";
  });
  zones = store.zones.map((z) => ({ name: z.name, polygon: z.polygon, door: z.door }));
  document.getElementById("zone-new").addEventListener("click", () => {
    const name = document.getElementById("zone-name").value.trim();
    if (!name) { say("name the zone first"); return; }
    drawing = { name, polygon: [], door: document.getElementById("zone-door").checked };
    say(`${name}: click its corners on the floor plan, then "Close zone"`);
  });
  document.getElementById("zone-close").addEventListener("click", () => {
    if (!drawing || drawing.polygon.length < 3) { say("a zone needs 3 corners or more"); return; }
    zones = zones.filter((z) => z.name !== drawing.name).concat([drawing]);
    drawing = null;
    drawPlan(); drawZones();
  });
  document.getElementById("zones-save").addEventListener("click", async () => {
    if (!store.can_save) { say("saving needs a token: start the service with --token"); return; }
    const [ok, answer] = await post("api/calibration/zones", { zones });
    say(ok ? `${answer.zones} zones saved in ${answer.saved}` : answer.error);
    document.body.dataset.zonesSaved = ok ? "yes" : "no";
  });
  drawPlan(); drawZones();
  await showCamera();
}

main();
