// The speech queue as the panel shows it: every item the daemon described (GET /v1/queue at
// each (re)connection, then its speech.* events), current and waiting ones first, then the
// last finished ones.  An item never moves back (an older view arriving late is ignored).

import { $, el } from "./view.js";

const FINISHED_SHOWN = 12;
const FINAL = new Set(["done", "dropped", "failed"]);
const ACTIVE = new Set(["sending", "speaking"]);
const RANK = { queued: 0, sending: 1, speaking: 2, done: 3, dropped: 3, failed: 3 };

const items = new Map(); // id -> item as the daemon last described it
let finishedOrder = []; // ids of finished items, newest first
let touchedDuringLoad = null; // ids updated while GET /v1/queue is on its way
let onRemove = () => {};

/** What to call when a waiting item's × is pressed (with the item). */
export function whenRemoved(callback) {
  onRemove = callback;
}

export function upsert(item) {
  if (!item || typeof item !== "object" || item.id === undefined) return;
  const id = String(item.id);
  const before = items.get(id);
  if (before && (RANK[item.state] ?? 0) < (RANK[before.state] ?? 0)) return; // an older view
  if (touchedDuringLoad) touchedDuringLoad.add(id);
  items.set(id, { ...(before || {}), ...item });
  if (FINAL.has(item.state) && !finishedOrder.includes(id)) {
    finishedOrder.unshift(id);
    for (const old of finishedOrder.splice(FINISHED_SHOWN)) items.delete(old);
  }
}

/** The items in an answer: {items, recent} (GET /v1/queue), {items} (speak), a list. */
export function itemsOf(data) {
  if (!data || typeof data !== "object") return [];
  if (Array.isArray(data)) return data;
  const found = [];
  for (const key of ["items", "recent"]) if (Array.isArray(data[key])) found.push(...data[key]);
  return found;
}

/** Replace what we show by the daemon's answer to GET /v1/queue (``load`` fetches it);
 * items that events touched while it was on its way are kept. */
export async function reload(load) {
  const touched = new Set();
  touchedDuringLoad = touched;
  let data;
  try {
    data = await load();
  } finally {
    touchedDuringLoad = null;
  }
  const list = itemsOf(data);
  const listed = new Set(list.map((i) => String(i.id)));
  for (const id of [...items.keys()]) if (!listed.has(id) && !touched.has(id)) items.delete(id);
  finishedOrder = finishedOrder.filter((id) => items.has(id));
  // Finished ones first, oldest to newest, so the newest ends up on top.
  const finished = list.filter((i) => FINAL.has(i.state));
  finished.sort((a, b) => (a.created || 0) - (b.created || 0)).forEach(upsert);
  list.filter((i) => !FINAL.has(i.state)).forEach(upsert);
  render();
}

function idNumber(id) {
  const digits = /\d+/.exec(String(id));
  return digits ? Number(digits[0]) : 0;
}

function ordered() {
  const all = [...items.values()];
  const active = all.filter((i) => ACTIVE.has(i.state));
  const urgent = (i) => (i.priority === "now" ? 0 : 1);
  const queued = all
    .filter((i) => i.state === "queued")
    .sort((a, b) => urgent(a) - urgent(b) || idNumber(a.id) - idNumber(b.id));
  const finished = finishedOrder.map((id) => items.get(id)).filter(Boolean);
  return [...active, ...queued, ...finished];
}

export function render() {
  const rows = ordered().map(row);
  $("queue").replaceChildren(...rows);
  const pending = [...items.values()].filter((i) => !FINAL.has(i.state)).length;
  $("queue-count").textContent = pending ? String(pending) : "";
  $("queue-empty").hidden = rows.length > 0;
}

function row(item) {
  const li = el("li", `item${FINAL.has(item.state) ? " finished" : ""}`);
  li.dataset.id = String(item.id);
  li.dataset.state = String(item.state);
  li.append(el("span", `state state-${item.state}`, item.state));
  li.append(el("span", "text", item.text));
  if (item.state === "queued") {
    const remove = el("button", "remove", "×");
    remove.type = "button";
    remove.title = "Remove from the queue";
    remove.setAttribute("aria-label", `Remove ${item.id}`);
    remove.addEventListener("click", () => onRemove(item));
    li.append(remove);
  } else {
    li.append(el("span"));
  }
  const meta = [item.id, item.mode, item.priority === "now" ? "now" : null, item.source];
  if (item.parts > 1) meta.push(`part ${item.part}/${item.parts}`);
  if (item.detail) meta.push(item.detail);
  li.append(el("span", "meta", meta.filter(Boolean).join(" · ")));
  return li;
}
