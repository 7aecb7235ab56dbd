"use strict";
// The labelling page: one review at a time; every answer goes to the server, which saves it, refits and picks the next.
const TOKEN = new URLSearchParams(location.search).get("token") || "";
const CLIENT = sessionStorage.getItem("review-transfer-client") ||
  (self.crypto && crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2) + String(Date.now()));
sessionStorage.setItem("review-transfer-client", CLIENT);
const $ = (id) => document.getElementById(id);
let current = null;
let queue = Promise.resolve();  // answers are sent one after another, in the order given

async function call(method, path, body) {
  const url = method === "GET" ? `${path}?client=${encodeURIComponent(CLIENT)}` : path;
  const response = await fetch(url, {
    method, headers: {"X-Token": TOKEN, "Content-Type": "application/json"},
    body: body === undefined ? undefined : JSON.stringify({client: CLIENT, ...body}),
  });
  if (!response.ok) throw new Error(`${response.status}: ${await response.text()}`);
  return response.json();
}

function render(state) {
  current = state.item;
  const review = $("review");
  if (current) {
    review.textContent = current.text;  // text, never markup: a review holding <script> shows as text
    review.dataset.row = current.row;
    review.scrollTop = 0;
    const guess = current.guess === null ? "no guess yet" :
      `guess ${current.guess} (P(positive) ${current.p_positive.toFixed(2)})`;
    $("why").textContent = `${guess} · ${current.reason}`;
  } else {
    review.textContent = "Nothing left to label.";
    delete review.dataset.row;
    $("why").textContent = "";
  }
  for (const id of ["positive", "negative", "skip"]) $(id).disabled = !current;
  $("undo").disabled = !state.can_undo;
  const counts = $("counts");
  counts.replaceChildren(...Object.entries(state.counts).map(([name, n]) => {
    const span = document.createElement("span");
    span.textContent = `${name}: ${n}`;
    return span;
  }));
  const total = Object.values(state.counts).reduce((a, b) => a + b, 0);
  document.body.dataset.labelled = total;
  $("progress").textContent = `${total} labelled · ${state.skipped} skipped · ${state.unlabelled} to go · strategy ${state.strategy}`;
  const last = state.history[state.history.length - 1];
  $("estimate").textContent = last && last.n === total
    ? `${pct(last.accuracy)} (95% interval ${pct(last.low)}–${pct(last.high)}) on ${last.n} labels, ${last.folds}-fold`
    : "needs 2 labels of each class";
  drawCurve(state.history);
  const note = $("note");
  note.textContent = state.note || "";
  note.className = "";
}

const pct = (x) => `${(100 * x).toFixed(1)}%`;

function drawCurve(points) {
  const svg = $("curve");
  const NS = "http://www.w3.org/2000/svg";
  const W = 340, H = 200, L = 34, R = 8, T = 8, B = 24;
  svg.replaceChildren();
  const el = (name, attrs, text) => {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.appendChild(node);
    return node;
  };
  el("line", {class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B});
  el("line", {class: "axis", x1: L, y1: T, x2: L, y2: H - B});
  if (!points.length) {
    el("text", {x: L + 10, y: H / 2}, "the curve starts at 2 labels per class");
    return;
  }
  const xMax = Math.max(...points.map((p) => p.n)), xMin = Math.min(...points.map((p) => p.n));
  const yMin = Math.max(0, Math.floor(10 * Math.min(...points.map((p) => p.low))) / 10);
  const x = (n) => L + (xMax === xMin ? 0.5 : (n - xMin) / (xMax - xMin)) * (W - L - R);
  const y = (a) => H - B - (a - yMin) / (1 - yMin) * (H - B - T);
  const band = points.map((p) => `${x(p.n)},${y(p.high)}`).concat(points.slice().reverse().map((p) => `${x(p.n)},${y(p.low)}`));
  el("polygon", {class: "band", points: band.join(" ")});
  el("polyline", {class: "line", points: points.map((p) => `${x(p.n)},${y(p.accuracy)}`).join(" ")});
  for (const a of [yMin, (yMin + 1) / 2, 1]) el("text", {x: 2, y: y(a) + 3}, pct(a).replace(".0", ""));
  el("text", {x: L, y: H - 6}, String(xMin));
  el("text", {x: W - R - 24, y: H - 6}, String(xMax));
  el("text", {x: (W + L) / 2 - 20, y: H - 6}, "labels");
}

function showError(error) {
  const note = $("note");
  note.textContent = `not saved: ${error.message}`;
  note.className = "error";
}

function enqueue(task) { queue = queue.then(task).catch(showError); }

function answer(choice) {
  enqueue(async () => { if (current) render(await call("POST", "/api/answer", {row: current.row, choice})); });
}

function undo() { enqueue(async () => render(await call("POST", "/api/undo", {}))); }

for (const id of ["positive", "negative", "skip"]) $(id).addEventListener("click", () => answer(id));
$("undo").addEventListener("click", undo);
document.addEventListener("keydown", (event) => {
  if (event.altKey || event.metaKey || (event.ctrlKey && event.key !== "z")) return;
  const key = event.key.toLowerCase();
  const choice = {p: "positive", arrowright: "positive", n: "negative", arrowleft: "negative", s: "skip", arrowdown: "skip"}[key];
  if (choice) answer(choice);
  else if (key === "u" || key === "backspace" || (event.ctrlKey && key === "z")) undo();
  else return;
  event.preventDefault();
});
enqueue(async () => render(await call("GET", "/api/state")));
