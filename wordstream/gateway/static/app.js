// Wordstream's live typing page: the text box is kept in step with the session over one
// WebSocket (gateway/app.py has the message contract). A space completes a word and sends it;
// backspacing over completed words rewinds them. The session id is kept in localStorage, so a
// reload or a dropped socket resumes the same session.
"use strict";

const $ = (id) => document.getElementById(id);
const STORE_KEY = "wordstream.session";
const COLOURS = ["#c0392b", "#2c6fbb", "#3d8b5f", "#8e44ad", "#d68910"];

const page = {
  socket: null,
  sessionId: localStorage.getItem(STORE_KEY) || "",
  model: "",
  labels: [],
  words: [], // per word the server has: {word, label, probabilities}
  steps: [], // per step: {word_index, state: {name: [[...layer]]}}
  waiting: [], // resolvers of requests in flight, in order
  syncing: false,
  again: false,
  retry: 0,
};

// --- the socket ---------------------------------------------------------------------------

function connect() {
  status("connecting…");
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const socket = new WebSocket(scheme + location.host + "/ws");
  page.socket = socket;
  socket.onopen = async () => {
    page.retry = 0;
    status("connected", true);
    await start();
  };
  socket.onmessage = (event) => receive(JSON.parse(event.data));
  socket.onclose = () => {
    if (page.socket !== socket) return;
    page.socket = null;
    for (const resolve of page.waiting.splice(0)) resolve({ error: { code: "UNAVAILABLE", message: "connection lost" } });
    page.retry += 1;
    const delay = Math.min(5000, 250 * 2 ** page.retry);
    status(`reconnecting in ${(delay / 1000).toFixed(1)} s…`);
    setTimeout(connect, delay);
  };
}

function receive(message) {
  if (message.replayed) {
    // The server had lost the session; the gateway's client replayed its words into a new one.
    remember(message.replayed.session_id);
    return;
  }
  const resolve = page.waiting.shift();
  if (resolve) resolve(message);
}

function request(message) {
  return new Promise((resolve) => {
    if (!page.socket || page.socket.readyState !== WebSocket.OPEN) {
      resolve({ error: { code: "UNAVAILABLE", message: "not connected" } });
      return;
    }
    page.waiting.push(resolve);
    page.socket.send(JSON.stringify(message));
  });
}

// --- the session ------------------------------------------------------------------------------

async function start() {
  let answer = null;
  if (page.sessionId) {
    answer = await request({ resume: page.sessionId });
    if (answer.error && answer.error.code !== "NOT_FOUND") return showError(answer.error);
  }
  if (!answer || answer.error) answer = await request({ open: { model: page.model } });
  if (answer.error) return showError(answer.error);
  opened(answer.opened);
}

function opened(session) {
  remember(session.session_id);
  page.model = session.model;
  page.labels = session.labels;
  $("model").value = session.model;
  page.steps = session.history.map((s) => ({ word_index: s.word_index, state: s.state }));
  page.words = [];
  for (const step of session.history) {
    page.words[step.word_index] = { word: step.word, label: step.label, probabilities: step.probabilities };
  }
  const input = $("input");
  if (session.resumed && !input.value.trim() && session.words.length) {
    input.value = session.words.join(" ") + " "; // a reload: the text comes back from the session
  }
  showError(null);
  render();
  sync();
}

function remember(sessionId) {
  page.sessionId = sessionId;
  localStorage.setItem(STORE_KEY, sessionId);
  $("session-id").textContent = sessionId.slice(0, 12) + "…";
  $("session-id").title = sessionId;
}

async function newSession() {
  page.sessionId = "";
  localStorage.removeItem(STORE_KEY);
  $("input").value = "";
  const answer = await request({ open: { model: page.model } });
  if (answer.error) return showError(answer.error);
  opened(answer.opened);
}

// --- typing -----------------------------------------------------------------------------------

function completedWords() {
  const text = $("input").value;
  const parts = text.split(/\s+/).filter((w) => w.length > 0);
  return /\s$/.test(text) || text.length === 0 ? parts : parts.slice(0, -1);
}

// Bring the session in line with the text box: rewind the words that no longer match, then
// send the new ones, one at a time, in order. Runs once at a time; input meanwhile runs it again.
async function sync() {
  if (page.syncing) {
    page.again = true;
    return;
  }
  page.syncing = true;
  try {
    do {
      page.again = false;
      const want = completedWords();
      let same = 0;
      while (same < want.length && same < page.words.length && want[same] === page.words[same].word) same += 1;
      if (page.words.length > same) {
        const answer = await request({ rewind: page.words.length - same });
        if (answer.error) return showError(answer.error);
        rewound(answer.rewound);
      }
      for (const word of want.slice(same)) {
        const answer = await request({ word });
        if (answer.error) return showError(answer.error);
        added(answer.word);
        if (page.again) break; // the text changed meanwhile: compare again
      }
    } while (page.again);
    showError(null);
  } finally {
    page.syncing = false;
  }
}

function added(result) {
  if (result.session_id !== page.sessionId) remember(result.session_id);
  page.words[result.word_index] = { word: result.word, label: result.label, probabilities: result.probabilities };
  page.words.length = result.word_index + 1;
  for (const step of result.steps) page.steps[step.index] = { word_index: step.word_index, state: step.state };
  page.steps.length = result.history_length;
  render();
}

function rewound(position) {
  page.words.length = position.words;
  page.steps.length = position.steps;
  render();
}

// --- drawing ----------------------------------------------------------------------------------

function render() {
  renderWords();
  renderChart();
  renderHeatmap();
}

function renderWords() {
  const list = $("words");
  list.replaceChildren(
    ...page.words.map((w) => {
      const p = w.probabilities[w.label];
      const item = document.createElement("li");
      item.innerHTML =
        '<span class="word"></span><span class="label" data-testid="label"></span>' +
        '<span class="bar"><span></span></span><span class="probability" data-testid="probability"></span>';
      item.querySelector(".word").textContent = w.word;
      item.querySelector(".label").textContent = w.label;
      item.querySelector(".label").style.color = colour(w.label);
      item.querySelector(".bar span").style.width = `${(100 * p).toFixed(1)}%`;
      item.querySelector(".bar span").style.background = colour(w.label);
      item.querySelector(".probability").textContent = p.toFixed(2);
      return item;
    }),
  );
  list.scrollTop = list.scrollHeight;
  $("word-count").textContent = String(page.words.length);
  const last = page.words[page.words.length - 1];
  $("reading").textContent = last ? `${last.label} ${last.probabilities[last.label].toFixed(2)}` : "–";
  $("moved").textContent =
    last && page.words.length > 1
      ? `P(${last.label}) ${signed(last.probabilities[last.label] - page.words[0].probabilities[last.label])} since the first word`
      : "";
}

function signed(x) {
  return (x >= 0 ? "+" : "−") + Math.abs(x).toFixed(2);
}

function colour(label) {
  const i = page.labels.indexOf(label);
  return COLOURS[(i < 0 ? 0 : i) % COLOURS.length];
}

function renderChart() {
  const svg = $("chart");
  const [width, height, pad] = [600, 220, 28];
  const n = page.words.length;
  const x = (i) => pad + (n <= 1 ? 0 : (i * (width - 2 * pad)) / (n - 1));
  const y = (p) => height - pad - p * (height - 2 * pad);
  let body = "";
  for (const p of [0, 0.5, 1]) {
    body += `<line x1="${pad}" x2="${width - pad}" y1="${y(p)}" y2="${y(p)}" stroke="#e3e7ee"/>`;
    body += `<text x="2" y="${y(p) + 4}" font-size="11" fill="#5b6578">${p}</text>`;
  }
  for (const label of page.labels) {
    const points = page.words.map((w, i) => `${x(i).toFixed(1)},${y(w.probabilities[label]).toFixed(1)}`);
    if (points.length === 1) points.push(points[0]);
    body += `<polyline fill="none" stroke="${colour(label)}" stroke-width="2" points="${points.join(" ")}"/>`;
  }
  svg.innerHTML = body;
  $("chart-legend").replaceChildren(
    ...page.labels.flatMap((label) => {
      const swatch = document.createElement("i");
      swatch.style.background = colour(label); // through the CSSOM: allowed by the page's CSP
      return [swatch, document.createTextNode(label)];
    }),
  );
}

function renderHeatmap() {
  const canvas = $("heatmap");
  const steps = page.steps.filter(Boolean);
  canvas.dataset.steps = String(steps.length);
  const columns = steps.map((s) => Object.values(s.state).flat(2));
  const rows = columns.length ? columns[0].length : 0;
  canvas.dataset.rows = String(rows);
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  if (!rows) return;
  canvas.width = Math.max(1, columns.length);
  canvas.height = rows;
  const image = context.createImageData(columns.length, rows);
  columns.forEach((values, col) => {
    values.forEach((value, row) => {
      const v = Math.tanh(value);
      const k = 4 * (row * columns.length + col);
      const [r, g, b] = v >= 0 ? [255, 255 * (1 - v), 255 * (1 - v)] : [255 * (1 + v), 255 * (1 + v), 255];
      image.data.set([r, g, b, 255], k);
    });
  });
  context.putImageData(image, 0, 0);
}

// --- status -----------------------------------------------------------------------------------

function status(text, ok = false) {
  $("status").textContent = text;
  $("status").classList.toggle("connected", ok);
}

function showError(error) {
  $("error").textContent = error ? `${error.code}: ${error.message}` : "";
}

async function loadModels() {
  try {
    const response = await fetch("/models");
    const { models, default: fallback } = await response.json();
    $("model").replaceChildren(
      ...models.map((m) => {
        const option = document.createElement("option");
        option.value = m.name;
        option.textContent = `${m.name} (${m.cell})`;
        return option;
      }),
    );
    page.model = page.model || fallback;
    $("model").value = page.model;
  } catch (error) {
    showError({ code: "UNAVAILABLE", message: `models: ${error}` });
  }
}

$("input").addEventListener("input", () => sync());
$("new-text").addEventListener("click", () => newSession());
$("model").addEventListener("change", (event) => {
  page.model = event.target.value;
  newSession();
});
loadModels().then(connect);
