// Listen mode in the panel: the transcript (what the avatar heard and said) and the Listen
// button.  The transcript comes from the daemon's "transcript" events; the button calls
// POST /v1/listen/start|stop and follows "listen.state" events.  Text is only ever inserted
// with textContent, never as HTML.

import { $, el } from "./view.js";

const LINES = 100;
let listen = { mode: "off", listening: false };

/** One "transcript" event: {role: "user"|"avatar", text, interrupted}. */
export function add(event) {
  const text = String(event.text || "").trim();
  if (!text) return;
  const user = event.role === "user";
  const line = el("li", `said ${user ? "heard" : "avatar"}`);
  line.append(el("span", "who", user ? "Heard" : "Avatar"), el("span", "words", text));
  if (event.interrupted) line.append(el("span", "cut", "(interrupted)"));
  const list = $("transcript");
  list.append(line);
  while (list.children.length > LINES) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
  $("transcript-empty").hidden = true;
}

/** The listen state, from status (listen) or a "listen.state" event. */
export function show(state) {
  if (!state || typeof state !== "object") return;
  listen = { mode: String(state.mode || "off"), listening: Boolean(state.listening) };
  const button = $("listen");
  button.hidden = listen.mode === "off";
  button.setAttribute("aria-pressed", String(listen.listening));
  const ptt = listen.mode === "push-to-talk";
  button.textContent = listen.listening ? (ptt ? "Release" : "Mute") : (ptt ? "Talk" : "Unmute");
  button.title = ptt
    ? "Push to talk: the avatar hears the meeting only while this is on"
    : "The avatar hears the meeting; mute it here";
}

/** The button: start when not listening, stop when listening. */
export function wire(api, act) {
  $("listen").addEventListener("click", () => act(async () => {
    show(await api("POST", `/v1/listen/${listen.listening ? "stop" : "start"}`));
  }));
}
