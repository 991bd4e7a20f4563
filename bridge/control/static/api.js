// The daemon's HTTP API as the panel calls it, with the token from the panel's own URL.
//
// A token given as ?token= in the panel's address is sent as a Bearer header (fetch), and as
// ?token= on URLs an element loads itself (an <img> cannot send headers).

export const TOKEN = new URLSearchParams(location.search).get("token") || "";

/** A refusal: ``message`` is the daemon's ``detail`` (what a person should read). */
export class ApiError extends Error {
  constructor(status, body) {
    const detail = body && typeof body === "object" ? body.detail || body.error : null;
    super(detail ? String(detail) : `HTTP ${status}`);
    this.status = status;
  }
}

/** ``method path`` with an optional JSON ``body``; the answer's JSON, or an ApiError. */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (TOKEN) headers.Authorization = `Bearer ${TOKEN}`;
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null; // a body that is not JSON: the status says enough
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    const retry = response.headers.get("Retry-After");
    if (response.status === 429 && retry) error.message += ` (try again in ${retry} s)`;
    throw error;
  }
  return data;
}

/** ``path`` with the token in its query string (for an <img>); unchanged without one. */
export function withToken(path) {
  if (!TOKEN) return path;
  return `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(TOKEN)}`;
}
