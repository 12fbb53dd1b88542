// The Socket.IO connection (the vendored socket.io-client, global `io`): its state for the header, a promise
// wrapper around acknowledged events, and a fresh access token on every (re)connect.

import { ApiError } from "./http.js";
import * as session from "./session.js";

const ACK_TIMEOUT_MS = 10_000;
// Refusal codes (err.data.code of connect_error) that retrying with the same credentials cannot fix (the last ones
// are a document namespace's: no such project or no access, a path that cannot be a file).
const AUTH_REFUSALS = new Set(["token_missing", "token_expired", "token_revoked", "invalid_token",
  "wrong_token_type", "unauthorized", "forbidden", "not_found", "project_not_found", "unknown_namespace",
  "invalid_path"]);
let socket = null;
let refusals = null; // the Refusals of `socket`
let state = "offline";
let detail = "";
const stateListeners = new Set();
const connectListeners = new Set();
const handlers = new Map(); // event -> Set(fn), kept across sockets

export const currentState = () => ({ state, detail });

/** `fn(state, detail)`: "offline" | "connecting" | "connected" | "reconnecting" | "disconnected". */
export function onState(fn) {
  stateListeners.add(fn);
  fn(state, detail);
}

/** `fn()` after every successful connect (the first and each reconnect): rooms must be joined again. */
export function onConnect(fn) {
  connectListeners.add(fn);
}

export function on(event, fn) {
  if (!handlers.has(event)) handlers.set(event, new Set());
  handlers.get(event).add(fn);
  if (socket) socket.on(event, fn);
}

function setState(next, text = "") {
  state = next;
  detail = text;
  for (const fn of stateListeners) fn(state, detail);
}

export function connect() {
  if (socket) return;
  setState("connecting");
  socket = window.io({
    path: "/socket.io",
    // A function, so every reconnect presents the newest access token rather than the one we started with.
    auth: (cb) => cb({ token: session.accessToken() }),
    transports: ["websocket", "polling"],
    tryAllTransports: true,
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
  });
  for (const [event, fns] of handlers) for (const fn of fns) socket.on(event, fn);
  refusals = new Refusals(socket, setState);

  socket.on("connect", () => {
    setState("connected");
    for (const fn of connectListeners) fn();
  });
  socket.on("disconnect", (reason) => {
    if (reason === "io client disconnect") setState("disconnected", "");
    else if (reason === "io server disconnect") setState("disconnected", "The server closed the connection.");
    else setState("reconnecting", reason);
  });
  socket.io.on("reconnect_attempt", (n) => setState("reconnecting", `attempt ${n}`));
  const mine = refusals;
  socket.on("connect_error", (err) => mine.handle(err));
}

/**
 * What to do when a socket (the room connection here, or a co-editing document's) fails to connect:
 * transport failures are retried by socket.io itself; a handshake the server refused is not, so an expired token
 * is refreshed once and the connection retried, a refusal that is not about who we are is retried with backoff,
 * and the rest end in "disconnected" with the reason. `setState(state, detail)` is told.
 */
export class Refusals {
  constructor(socket, setState) {
    this.socket = socket;
    this.setState = setState;
    this.stopped = false;
    this.refreshed = false;
    this.count = 0; // consecutive transient refusals, for the backoff of our own retries
    this.timer = null;
    socket.on("connect", () => {
      this.refreshed = false;
      this.count = 0;
    });
    // The server holds a socket to its token for the whole connection: hand it every refreshed access token, so
    // the socket outlives the token it connected with; and follow SESSION_REVOKED (sent before it disconnects us).
    this.unwatch = session.onChange((reason) => {
      if (reason === "refreshed" && socket.connected) socket.emit("auth", { token: session.accessToken() });
    });
    socket.on("SESSION_REVOKED", ({ reason } = {}) => this.revoked(reason));
  }

  async revoked(reason) {
    if (!session.current()) return; // signed out here already (our own logout)
    if (reason !== "token_expired") {
      // Logged out elsewhere, or the refresh token was replayed (the server revoked the whole login).
      this.stop();
      session.end(reason === "logout" ? "ended" : "expired");
      return;
    }
    try {
      await session.refresh();
      if (!this.stopped) this.socket.connect(); // a server disconnect is not retried by socket.io itself
    } catch {
      this.setState("disconnected", "Your session expired; sign in again.");
    }
  }

  async handle(err) {
    const socket = this.socket;
    if (this.stopped) return;
    if (socket.active) {
      this.setState("reconnecting", err.message);
      return;
    }
    const code = err.data && err.data.code;
    if (code === "token_expired" && !this.refreshed && session.current()) {
      this.refreshed = true;
      try {
        await session.refresh();
        if (!this.stopped) socket.connect();
        return;
      } catch {
        // falls through to the refusal message
      }
    }
    // Not about who we are (a process shutting down, storage briefly away; the contract gives every refusal about
    // the token or access a code, so one without a code is transient too): retry with backoff.
    if (!AUTH_REFUSALS.has(code)) {
      this.count += 1;
      this.setState("reconnecting", err.message);
      clearTimeout(this.timer);
      this.timer = setTimeout(() => !this.stopped && !socket.active && socket.connect(),
        Math.min(5000, 250 * 2 ** this.count) * (0.75 + Math.random() / 2));
      return;
    }
    this.setState("disconnected", `Connection refused: ${err.message}`);
  }

  /** The socket is being closed for good: no retry may reopen it. */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.unwatch();
  }
}

export function reconnect() {
  if (socket && !socket.connected) {
    setState("connecting");
    socket.connect();
  }
}

export function disconnect() {
  if (!socket) return;
  refusals.stop();
  socket.disconnect();
  socket = null;
  setState("offline");
}

/** Emit an acknowledged event; resolves to the ack, rejects with an ApiError for `{ok: false}` or a timeout. */
export function request(event, payload, timeout = ACK_TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    if (!socket || !socket.connected) {
      reject(new ApiError("Not connected to the live server; it is sent again once the connection is back.",
        { code: "not_connected" }));
      return;
    }
    socket.timeout(timeout).emit(event, payload, (err, ack) => {
      if (err) {
        reject(new ApiError(`The server did not answer ${event} in time.`, { code: "timeout" }));
      } else if (!ack || ack.ok === false) {
        const error = (ack && ack.error) || {};
        reject(new ApiError(error.message || `${event} failed.`,
          { code: error.code || "error", details: { ...(error.details || {}), ...(ack || {}) } }));
      } else {
        resolve(ack);
      }
    });
  });
}

/** Fire-and-forget (cursor moves: best effort by contract, a lost one is replaced by the next). */
export function emit(event, payload) {
  if (socket && socket.connected) socket.emit(event, payload);
}
