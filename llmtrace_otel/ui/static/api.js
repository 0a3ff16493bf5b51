// The query API (/api/v1), with the admin token the user entered (sessionStorage only).

import { h, show } from "./dom.js";

const TOKEN_KEY = "llmtrace.admin_token";

// A 401 from the API; `refused` when the request carried a token (a wrong one), not none.
export class AuthNeeded extends Error {
  constructor(refused) {
    super(refused ? "token refused" : "token needed");
    this.refused = refused;
  }
}

export async function api(path, params) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== "" && value !== null && value !== undefined) url.searchParams.set(key, value);
  }
  const headers = { Accept: "application/json" };
  const token = window.sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(url, { headers });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (response.status === 401) throw new AuthNeeded(Boolean(token));
  if (!response.ok) {
    const message = body && body.error ? body.error.message : response.statusText;
    throw new Error(`${response.status}: ${message}`);
  }
  return body;
}

function tokenForm(retry, refused) {
  const input = h("input", { type: "password", name: "token", autocomplete: "off",
    placeholder: "api.admin_token", "aria-label": "admin token" });
  const form = h("form", { class: "token", id: "token-form", onsubmit: (event) => {
    event.preventDefault();
    window.sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    retry();
  } },
  h("p", {}, "This API is protected. Enter the admin token (setting api.admin_token); it is ",
    "kept in this tab's session storage only."),
  refused ? h("p", { class: "error", role: "alert", id: "token-refused" },
    "The API refused that token.") : null,
  input, h("button", { type: "submit" }, "Open"));
  show(form);
  input.focus();
}

// Run a view; ask for the token when the API wants one, show any other failure.
export async function guarded(render) {
  try {
    await render();
    return true;
  } catch (error) {
    if (error instanceof AuthNeeded) tokenForm(() => guarded(render), error.refused);
    else show(h("p", { class: "error", role: "alert" }, String(error.message || error)));
    return false;
  }
}
