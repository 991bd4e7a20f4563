// What the panel shows besides the queue: state chips, notices, messages and the event log.
// Text from the daemon is only ever inserted with textContent, never as HTML.

const LOG_LINES = 200;

export const $ = (id) => document.getElementById(id);

/** A new element with a class and text (never HTML). */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// --- state chips ----------------------------------------------------------------------------

const TONES = {
  ok: ["live", "writing", "speaking", "silent", "connected", "open", "running", "ok"],
  busy: ["starting", "connecting", "reconnecting", "renewing", "stopping", "idle", "waiting", "stalled"],
  bad: ["failed", "error", "unavailable", "closed", "stopped", "offline", "refused"],
};

function tone(state) {
  for (const [name, states] of Object.entries(TONES)) if (states.includes(state)) return name;
  return "idle";
}

export function setChip(id, state) {
  const chip = $(id);
  const value = state === undefined || state === null || state === "" ? "–" : String(state);
  chip.dataset.state = value;
  chip.dataset.tone = tone(value);
  chip.querySelector(".value").textContent = value;
}

/** GET /v1/status: provider, session (and its time left), camera and microphone. */
export function showStatus(status) {
  if (!status || typeof status !== "object") return;
  if (status.provider) $("provider").textContent = String(status.provider);
  const session = status.session || {};
  setChip("session", session.state);
  setChip("camera", (status.camera || {}).state);
  setChip("microphone", (status.microphone || {}).state);
  const left = session.seconds_left;
  $("seconds-left").textContent =
    typeof left === "number" && session.state === "live" ? `session ends in ${duration(left)}` : "";
}

function duration(seconds) {
  const m = Math.floor(seconds / 60);
  const s = Math.floor(seconds % 60);
  return m > 0 ? `${m} min ${String(s).padStart(2, "0")} s` : `${s} s`;
}

/** The banner above the panel (empty text: hidden). */
export function notice(text) {
  const node = $("notice");
  node.textContent = text || "";
  node.hidden = !text;
}

/** The line under the Speak button: what the last action did ("ok") or why not ("bad"). */
export function say(text, mood) {
  const node = $("speak-message");
  node.textContent = text;
  node.dataset.tone = mood || "";
}

// --- the event log --------------------------------------------------------------------------

/** One line, newest on top, for an event pushed over the WebSocket. */
export function logEvent(event) {
  const topic = String(event.topic || "");
  if (topic === "avatar.speak_text") {
    logWords(event);
    return;
  }
  logLine(topic, summary(event), event.at);
}

export function logLine(topic, text, at) {
  const when = at ? new Date(at * 1000) : new Date();
  const row = el("li");
  row.dataset.topic = topic;
  row.append(el("span", "time", when.toLocaleTimeString([], { hour12: false })));
  const topicNode = el("span", "topic", topic);
  topicNode.dataset.kind = topic.split(".")[0];
  row.append(topicNode);
  row.append(el("span", "data", text));
  const log = $("log");
  log.prepend(row);
  while (log.children.length > LOG_LINES) log.lastElementChild.remove();
  return row;
}

function summary(event) {
  if (event.item && typeof event.item === "object") {
    const i = event.item;
    return `${i.id} ${i.state}${i.detail ? ` (${i.detail})` : ""} “${clip(String(i.text || ""), 60)}”`;
  }
  const parts = [];
  for (const [key, value] of Object.entries(event)) {
    if (["type", "topic", "at"].includes(key) || value === null || value === undefined) continue;
    parts.push(`${key}=${typeof value === "object" ? JSON.stringify(value) : shortId(key, value)}`);
  }
  return clip(parts.join(" "), 200);
}

// The avatar's words arrive a few at a time: one line per utterance, growing, not one each.
const wordRows = new Map(); // task id -> its log line

function logWords(event) {
  const task = String(event.task_id);
  let row = wordRows.get(task);
  if (!row || !row.isConnected) {
    for (const [old, line] of wordRows) if (!line.isConnected) wordRows.delete(old);
    row = logLine("avatar.speak_text", "", event.at);
    row.dataset.words = "";
    wordRows.set(task, row);
  }
  row.dataset.words += String(event.text || "");
  const words = `“${clip(row.dataset.words.trim(), 160)}”`;
  row.querySelector(".data").textContent = `task_id=${shortId("task_id", task)} ${words}`;
}

function clip(text, most) {
  return text.length > most ? `${text.slice(0, most - 1)}…` : text;
}

/** A provider's long task/session id, shortened for the log (the start tells them apart). */
function shortId(key, value) {
  const text = String(value);
  return key.endsWith("_id") && text.length > 12 ? `${text.slice(0, 8)}…` : text;
}
