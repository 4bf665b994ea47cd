// Calls to the controller's JSON API with the session cookie and, for changes, the CSRF token.
let csrf = "";

/** Remember the session's CSRF token (from sign-in or GET /api/v1/session). */
export function setCsrf(token) {
  csrf = token || "";
}

/** Fetch JSON; resolves to {ok, status, body}. */
export async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  const res = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  return { ok: res.ok, status: res.status, body: data };
}
