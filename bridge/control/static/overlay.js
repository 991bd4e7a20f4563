// The overlay page (/overlay) for OBS's Browser Source: the avatar on a transparent
// background, full-bleed, and (with ?captions=1) what it says.
//
// Video: binary messages on /v1/overlay.ws (bridge/control/overlay.py): a 24-byte header
// (magic "HBO1", width, height, flags, the frame's arrival in wall-clock ms), then the I420
// planes and, when flags & 1, a full-size alpha plane.  WebGL turns them into RGBA with
// premultiplied alpha; without WebGL a 2D canvas does it in script (slower).  Both sockets
// reconnect by themselves when the daemon restarts.
//
// Query parameters: token, captions=1, position=top|bottom, size=<px>, color=<hex>,
// background=<hex, 6 or 8 digits>, hold=<seconds the caption stays after speech>.

const params = new URLSearchParams(location.search);
const TOKEN = params.get("token") || "";
const RECONNECT_MS = [250, 500, 1000, 2000, 4000];
const HEADER_BYTES = 24;
const HAS_ALPHA = 1;

/** ``path`` on this daemon as a WebSocket URL, with the token when the page has one. */
function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = TOKEN ? `?token=${encodeURIComponent(TOKEN)}` : "";
  return `${scheme}//${location.host}${path}${query}`;
}

/** Reconnects ``open`` with back-off whenever its socket closes. */
function keepOpen(open) {
  let attempts = 0;
  const start = () => {
    const ws = open();
    ws.addEventListener("open", () => { attempts = 0; });
    ws.addEventListener("close", () => {
      const delay = RECONNECT_MS[Math.min(attempts, RECONNECT_MS.length - 1)];
      attempts += 1;
      setTimeout(start, delay);
    });
  };
  start();
}

// --- drawing -------------------------------------------------------------------------------

const canvas = document.getElementById("video");
const stats = { frames: 0, drawn: 0, latencies: [], renderer: "", connected: false };
window.overlayStats = stats; // for tests and the benchmark

const VERTEX = `
attribute vec2 pos;
varying vec2 uv;
void main() {
  uv = vec2((pos.x + 1.0) * 0.5, (1.0 - pos.y) * 0.5);
  gl_Position = vec4(pos, 0.0, 1.0);
}`;
// BT.601 limited range, what WebRTC decoders produce; premultiplied alpha out.
const FRAGMENT = `
precision mediump float;
uniform sampler2D ty, tu, tv, ta;
uniform float hasAlpha;
varying vec2 uv;
void main() {
  float y = 1.1644 * (texture2D(ty, uv).r - 0.0627);
  float u = texture2D(tu, uv).r - 0.502;
  float v = texture2D(tv, uv).r - 0.502;
  vec3 rgb = clamp(vec3(y + 1.596 * v, y - 0.392 * u - 0.813 * v, y + 2.017 * u), 0.0, 1.0);
  float a = hasAlpha > 0.5 ? texture2D(ta, uv).r : 1.0;
  gl_FragColor = vec4(rgb * a, a);
}`;

function glRenderer() {
  const gl = canvas.getContext("webgl", { alpha: true, premultipliedAlpha: true, antialias: false });
  if (!gl) return null;
  const shader = (kind, source) => {
    const s = gl.createShader(kind);
    gl.shaderSource(s, source);
    gl.compileShader(s);
    return s;
  };
  const program = gl.createProgram();
  gl.attachShader(program, shader(gl.VERTEX_SHADER, VERTEX));
  gl.attachShader(program, shader(gl.FRAGMENT_SHADER, FRAGMENT));
  gl.linkProgram(program);
  if (!gl.getProgramParameter(program, gl.LINK_STATUS)) return null;
  gl.useProgram(program);
  gl.bindBuffer(gl.ARRAY_BUFFER, gl.createBuffer());
  gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
  const pos = gl.getAttribLocation(program, "pos");
  gl.enableVertexAttribArray(pos);
  gl.vertexAttribPointer(pos, 2, gl.FLOAT, false, 0, 0);
  gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
  const textures = ["ty", "tu", "tv", "ta"].map((name, unit) => {
    const t = gl.createTexture();
    gl.activeTexture(gl.TEXTURE0 + unit);
    gl.bindTexture(gl.TEXTURE_2D, t);
    for (const p of [gl.TEXTURE_WRAP_S, gl.TEXTURE_WRAP_T]) gl.texParameteri(gl.TEXTURE_2D, p, gl.CLAMP_TO_EDGE);
    for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, p, gl.LINEAR);
    gl.uniform1i(gl.getUniformLocation(program, name), unit);
    return t;
  });
  const hasAlpha = gl.getUniformLocation(program, "hasAlpha");
  const upload = (unit, w, h, data) => {
    gl.activeTexture(gl.TEXTURE0 + unit);
    gl.bindTexture(gl.TEXTURE_2D, textures[unit]);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.LUMINANCE, w, h, 0, gl.LUMINANCE, gl.UNSIGNED_BYTE, data);
  };
  return {
    name: "webgl",
    draw(frame) {
      gl.viewport(0, 0, canvas.width, canvas.height);
      upload(0, frame.w, frame.h, frame.y);
      upload(1, frame.cw, frame.ch, frame.u);
      upload(2, frame.cw, frame.ch, frame.v);
      if (frame.a) upload(3, frame.w, frame.h, frame.a);
      gl.uniform1f(hasAlpha, frame.a ? 1 : 0);
      gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
    },
    clear() {
      gl.clearColor(0, 0, 0, 0);
      gl.clear(gl.COLOR_BUFFER_BIT);
    },
  };
}

function canvasRenderer() {
  const ctx = canvas.getContext("2d");
  let image = null;
  return {
    name: "2d",
    draw(frame) {
      if (!image || image.width !== frame.w || image.height !== frame.h) image = ctx.createImageData(frame.w, frame.h);
      const out = image.data;
      for (let row = 0; row < frame.h; row++) {
        const crow = (row >> 1) * frame.cw;
        for (let col = 0; col < frame.w; col++) {
          const i = row * frame.w + col;
          const c = crow + (col >> 1);
          const y = 1.1644 * (frame.y[i] - 16);
          const u = frame.u[c] - 128;
          const v = frame.v[c] - 128;
          const o = i * 4;
          out[o] = y + 1.596 * v;
          out[o + 1] = y - 0.392 * u - 0.813 * v;
          out[o + 2] = y + 2.017 * u;
          out[o + 3] = frame.a ? frame.a[i] : 255;
        }
      }
      ctx.putImageData(image, 0, 0);
    },
    clear() {
      ctx.clearRect(0, 0, canvas.width, canvas.height);
    },
  };
}

const renderer = glRenderer() || canvasRenderer();
stats.renderer = renderer.name;
let pending = null; // the newest frame not drawn yet (a slow page skips, never queues)
let videoSocket = null;
let blank = false;

function parse(buffer) {
  const head = new DataView(buffer, 0, HEADER_BYTES);
  const magic = String.fromCharCode(...new Uint8Array(buffer, 0, 4));
  if (magic !== "HBO1") return null;
  const w = head.getUint32(4, true);
  const h = head.getUint32(8, true);
  const flags = head.getUint32(12, true);
  const arrived = head.getFloat64(16, true);
  if (w === 0) return { w: 0, arrived };
  const cw = (w + 1) >> 1;
  const ch = (h + 1) >> 1;
  let at = HEADER_BYTES;
  const plane = (size) => {
    const view = new Uint8Array(buffer, at, size);
    at += size;
    return view;
  };
  const need = HEADER_BYTES + w * h + 2 * cw * ch + (flags & HAS_ALPHA ? w * h : 0);
  if (buffer.byteLength < need) return null;
  const frame = { w, h, cw, ch, arrived };
  frame.y = plane(w * h);
  frame.u = plane(cw * ch);
  frame.v = plane(cw * ch);
  frame.a = flags & HAS_ALPHA ? plane(w * h) : null;
  return frame;
}

function paint() {
  requestAnimationFrame(paint);
  if (blank) {
    renderer.clear();
    blank = false;
  }
  const frame = pending;
  if (!frame) return;
  pending = null;
  if (canvas.width !== frame.w || canvas.height !== frame.h) {
    canvas.width = frame.w;
    canvas.height = frame.h;
  }
  renderer.draw(frame);
  stats.drawn += 1;
  // Drawn: room for the next (the daemon sends at most two frames not yet drawn).
  if (videoSocket && videoSocket.readyState === WebSocket.OPEN) videoSocket.send("drawn");
  // Frame arrival in the daemon → drawn for the next paint (same machine, same clock).
  stats.latencies.push(performance.timeOrigin + performance.now() - frame.arrived);
  if (stats.latencies.length > 600) stats.latencies.splice(0, 300);
}
requestAnimationFrame(paint);

keepOpen(() => {
  const ws = new WebSocket(socketUrl("/v1/overlay.ws"));
  ws.binaryType = "arraybuffer";
  videoSocket = ws;
  ws.addEventListener("open", () => { stats.connected = true; });
  ws.addEventListener("message", (message) => {
    if (!(message.data instanceof ArrayBuffer)) return;
    const frame = parse(message.data);
    if (!frame) return;
    stats.frames += 1;
    if (frame.w === 0) {
      pending = null;
      blank = true;
    } else {
      // A frame replaced before it was drawn still frees its place.
      if (pending && ws.readyState === WebSocket.OPEN) ws.send("skipped");
      pending = frame;
    }
  });
  ws.addEventListener("close", () => {
    stats.connected = false;
    pending = null;
    blank = true; // no daemon: show nothing rather than a frozen avatar
  });
  return ws;
});

// --- captions --------------------------------------------------------------------------------

const HEX = /^[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$/;

function styleCaptions() {
  const box = document.getElementById("caption");
  const text = document.getElementById("caption-text");
  if (params.get("position") === "top") box.classList.add("top");
  const size = Number(params.get("size"));
  if (Number.isFinite(size) && size >= 8 && size <= 200) text.style.fontSize = `${size}px`;
  const color = params.get("color") || "";
  if (HEX.test(color)) text.style.color = `#${color}`;
  const background = params.get("background") || "";
  if (HEX.test(background)) text.style.background = `#${background}`;
  return { box, text };
}

function captions() {
  const { box, text } = styleCaptions();
  const hold = Math.min(Math.max(Number(params.get("hold")) || 2, 0), 30) * 1000;
  const MAX_CHARS = 160; // the tail of a long utterance: about two lines
  let words = "";
  let hideTimer = 0;
  const show = (value) => {
    clearTimeout(hideTimer);
    words = value;
    const tail = words.trim();
    text.textContent = tail.length > MAX_CHARS ? `…${tail.slice(-MAX_CHARS)}` : tail;
    box.hidden = !tail;
  };
  const onEvent = (event) => {
    if (event.topic === "avatar.speak_started") show("");
    else if (event.topic === "avatar.speak_text") show(words + String(event.text || ""));
    else if (event.topic === "avatar.speak_ended") {
      clearTimeout(hideTimer);
      hideTimer = setTimeout(() => show(""), hold);
    }
  };
  keepOpen(() => {
    const ws = new WebSocket(socketUrl("/v1/ws"));
    ws.addEventListener("open", () => {
      ws.send(JSON.stringify({ type: "subscribe", topics: ["avatar.*"], ref: "overlay" }));
    });
    ws.addEventListener("message", (message) => {
      let data;
      try {
        data = JSON.parse(message.data);
      } catch (_) {
        return;
      }
      if (data.type === "event") onEvent(data);
    });
    ws.addEventListener("close", () => show(""));
    return ws;
  });
}

if (["1", "true", "on", "yes"].includes((params.get("captions") || "").toLowerCase())) captions();
