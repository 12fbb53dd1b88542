// One fetch wrapper for the REST API: JSON in, JSON out, every failure becomes an ApiError whose message is the
// one the server wrote (the contract's `{"error": {code, message, details}}`), or a plain sentence when the
// server could not be reached or answered something that is not the contract's JSON.

export const API = "/api/v1";

export class ApiError extends Error {
  constructor(message, { code = "error", status = 0, details = null, retryAfter = null } = {}) {
    super(message);
    this.code = code;
    this.status = status;
    this.details = details;
    this.retryAfter = retryAfter;
  }

  /** The sentence to show a person: the server's message, the failing fields, and when to retry. */
  get display() {
    let text = this.message;
    const fields = this.details && this.details.fields;
    if (fields && typeof fields === "object") {
      const lines = flattenFields(fields);
      if (lines.length) text += " " + lines.join("; ") + ".";
    }
    // Rate-limited routes send Retry-After on every answer; it only means something on a 429.
    if (this.status === 429 && this.retryAfter && !/second|minute/i.test(text)) {
      text += ` Try again in ${this.retryAfter} s.`;
    }
    return text;
  }
}

function flattenFields(fields, prefix = "") {
  const out = [];
  for (const [key, value] of Object.entries(fields)) {
    // webargs nests by location ("json": {...}); the location is noise to a person.
    const location = ["json", "query", "form", "headers", "_schema"].includes(key);
    const name = location ? prefix : (prefix ? `${prefix}.${key}` : key);
    if (Array.isArray(value) && value.every((v) => typeof v === "string")) {
      out.push(name ? `${name}: ${value.join(" ")}` : value.join(" "));
    } else if (value && typeof value === "object") {
      out.push(...flattenFields(value, name));
    } else if (typeof value === "string") {
      out.push(name ? `${name}: ${value}` : value);
    }
  }
  return out;
}

/**
 * Send one request. `token` goes in the Bearer header; `body` is sent as JSON; `headers` are extra headers.
 * Resolves to the parsed JSON (null for 204), or to the Response itself when `raw` is set (downloads).
 */
export async function send(method, path, { token = null, body, headers = {}, raw = false } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(API + path, init);
  } catch (err) {
    throw new ApiError(`Cannot reach the server (${err.message}). Check the connection and try again.`,
      { code: "network_error" });
  }
  if (response.ok) {
    if (raw) return response;
    if (response.status === 204) return null;
    return response.json();
  }
  throw await errorFrom(response);
}

async function errorFrom(response) {
  const retryAfter = response.headers.get("Retry-After");
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    // Not the contract's JSON (a proxy's HTML page, an empty body): say what happened in plain words.
  }
  const error = payload && payload.error;
  if (error && typeof error.message === "string") {
    return new ApiError(error.message,
      { code: error.code, status: response.status, details: error.details, retryAfter });
  }
  return new ApiError(`The server answered ${response.status} ${response.statusText || ""}`.trim() + ".",
    { code: "http_" + response.status, status: response.status, retryAfter });
}
