// heygen-bridge web panel: plain JavaScript modules, no build step, nothing from elsewhere.
//
// It talks only to the daemon that served it: the HTTP API (/v1/...) for actions and the
// state at each (re)connection (api.js), the WebSocket /v1/ws for live events, and
// /v1/preview.mjpg for the picture (open only while the page is visible).  The WebSocket's
// first message carries the token (when the panel's URL has one); when it closes (the
// daemon restarted) the panel reconnects, reloads what it shows and restarts the preview.

import { TOKEN, api, withToken } from "./api.js";
import * as queue from "./queue.js";
import * as transcript from "./transcript.js";
import { $, el, logEvent, logLine, notice, say, setChip, showStatus } from "./view.js";

const PREVIEW_FPS = 5;
const RECONNECT_MS = [500, 1000, 2000, 4000, 8000];
const STATUS_EVERY_MS = 10000;
const HELLO = "panel-hello"; // the ref of our first message: its ack says we are in

// --- the WebSocket: live events, reconnecting when the daemon restarts ----------------------

let socket = null;
let attempts = 0;

function connect() {
  setChip("link", attempts ? "reconnecting" : "connecting");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/v1/ws`);
  socket = ws;
  ws.addEventListener("open", () => {
    const hello = TOKEN ? { type: "auth", token: TOKEN } : { type: "subscribe", topics: ["*"] };
    ws.send(JSON.stringify({ ...hello, ref: HELLO }));
  });
  ws.addEventListener("message", (message) => {
    let data;
    try {
      data = JSON.parse(message.data);
    } catch (_) {
      return; // not JSON: nothing the panel can show
    }
    if (data.type === "event") onEvent(data);
    else if (data.type === "ack" && data.ref === HELLO) connected();
    else if (data.type === "error") logLine("error", `${data.error || ""} ${data.detail || ""}`.trim());
  });
  ws.addEventListener("close", (closed) => {
    if (socket !== ws) return;
    socket = null;
    if (closed.code === 4401) {
      notice(TOKEN
        ? "The bridge refused this panel's token: open the panel with the right ?token=… in its address."
        : "The bridge needs a token: open the panel as /?token=<your token>.");
    }
    if ($("link").dataset.state === "connected") logLine("link", "lost: reconnecting…");
    setChip("link", "offline");
    const delay = RECONNECT_MS[Math.min(attempts, RECONNECT_MS.length - 1)];
    attempts += 1;
    setTimeout(connect, delay);
  });
}

function connected() {
  attempts = 0;
  setChip("link", "connected");
  logLine("link", "connected: live events from here on");
  notice("");
  refresh(); // the daemon may have restarted: what we showed may be stale
  startPreview();
}

function onEvent(event) {
  const topic = String(event.topic || "");
  if (topic.startsWith("speech.") && event.item) {
    queue.upsert(event.item);
    queue.render();
  } else if (topic === "session.state") {
    setChip("session", event.state);
    if (event.state !== "live") $("seconds-left").textContent = "";
  } else if (topic === "camera.state" || topic === "microphone.state") {
    setChip(topic.split(".")[0], event.state);
  } else if (topic === "transcript") {
    transcript.add(event);
  } else if (topic === "listen.state") {
    transcript.show(event);
  }
  logEvent(event);
}

// --- what the panel shows at each (re)connection --------------------------------------------

async function refresh() {
  await Promise.allSettled([loadStatus(), queue.reload(() => api("GET", "/v1/queue")), loadPresets()]);
}

async function loadStatus() {
  try {
    const status = await api("GET", "/v1/status");
    showStatus(status);
    transcript.show(status && status.listen);
  } catch (error) {
    if (error.status === 401) notice(`The bridge refused the panel: ${error.message}`);
  }
}

async function loadPresets() {
  const box = $("presets");
  let presets;
  try {
    presets = (await api("GET", "/v1/presets")).presets || [];
  } catch (error) {
    box.replaceChildren(el("span", "muted", `presets: ${error.message}`));
    return;
  }
  if (!presets.length) {
    box.replaceChildren(el("span", "muted", "None yet: add some under presets: in the config."));
    return;
  }
  box.replaceChildren(...presets.map((preset) => {
    const button = el("button", "preset", preset.name);
    button.type = "button";
    button.title = `${preset.text}${preset.priority === "now" ? " (now)" : ""}`;
    button.addEventListener("click", () => act(async () => {
      accepted(await api("POST", `/v1/presets/${encodeURIComponent(preset.name)}`));
    }));
    return button;
  }));
}

// --- actions --------------------------------------------------------------------------------

async function act(action) {
  try {
    await action();
  } catch (error) {
    say(error.message, "bad");
  }
}

function accepted(answer) {
  const items = queue.itemsOf(answer);
  items.forEach(queue.upsert);
  queue.render();
  if (items.length) say(`Queued ${items.map((i) => i.id).join(", ")}`, "ok");
}

function speak(submitted) {
  submitted.preventDefault();
  const box = $("text");
  const text = box.value;
  if (!text.trim()) {
    say("Type something to say first.", "bad");
    box.focus();
    return;
  }
  const mode = document.querySelector('input[name="mode"]:checked').value;
  const now = $("now");
  const priority = now.checked ? "now" : "normal";
  const button = $("speak");
  button.disabled = true;
  act(async () => {
    accepted(await api("POST", "/v1/speak", { text, mode, priority }));
    box.value = "";
    now.checked = false; // "now" interrupts: never by accident on the next one
  }).finally(() => {
    button.disabled = false;
  });
}

function wireActions() {
  $("speak-form").addEventListener("submit", speak);
  $("text").addEventListener("keydown", (key) => {
    if (key.key === "Enter" && (key.ctrlKey || key.metaKey)) {
      key.preventDefault();
      $("speak-form").requestSubmit();
    }
  });
  $("interrupt").addEventListener("click", () => act(async () => {
    const stopped = (await api("POST", "/v1/interrupt")).interrupted;
    say(stopped ? `Interrupted ${stopped.id}.` : "Nothing was being said.", "ok");
  }));
  $("clear").addEventListener("click", () => act(async () => {
    const cleared = (await api("POST", "/v1/queue/clear")).cleared || [];
    say(cleared.length ? `Cleared ${cleared.length} waiting.` : "Nothing was waiting.", "ok");
  }));
  transcript.wire(api, act);
  queue.whenRemoved((item) => act(async () => {
    await api("DELETE", `/v1/queue/${encodeURIComponent(item.id)}`);
  }));
}

// --- the preview: an MJPEG stream, open only while the page is visible ----------------------

function startPreview() {
  if (document.hidden) return;
  $("preview").src = withToken(`/v1/preview.mjpg?fps=${PREVIEW_FPS}&t=${Date.now()}`);
}

function stopPreview() {
  $("preview").removeAttribute("src"); // ends the stream: the daemon stops encoding for us
}

function wirePreview() {
  const img = $("preview");
  img.addEventListener("load", () => {
    $("preview-off").hidden = true;
  });
  img.addEventListener("error", () => {
    if (!img.getAttribute("src")) return;
    $("preview-off").textContent = "no picture";
    $("preview-off").hidden = false;
  });
  document.addEventListener("visibilitychange", () => (document.hidden ? stopPreview() : startPreview()));
}

// --- start ----------------------------------------------------------------------------------

wireActions();
wirePreview();
connect();
setInterval(() => {
  if (socket && socket.readyState === WebSocket.OPEN && !document.hidden) loadStatus();
}, STATUS_EVERY_MS);
