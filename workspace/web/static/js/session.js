// The signed-in session: the token pair in sessionStorage (per tab: two tabs never spend the same refresh token,
// which the server would take for a stolen token and answer by revoking the whole login), refreshed shortly
// before the access token expires. Every refresh rotates the pair; the newest refresh token is always the one kept.

import { ApiError, send } from "./http.js";

const KEY = "workspace.session";
const listeners = new Set();
let state = load();
let timer = null;
let inflight = null;

function load() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(KEY) || "null");
    return saved && saved.access && saved.refresh ? saved : null;
  } catch {
    return null;
  }
}

function save() {
  if (state) sessionStorage.setItem(KEY, JSON.stringify(state));
  else sessionStorage.removeItem(KEY);
}

/** The claims of a JWT (not verified: only to know when it expires). */
export function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
  } catch {
    return {};
  }
}

export const current = () => state;
export const accessToken = () => (state ? state.access : null);

/** `fn(reason)` runs when the session starts, is refreshed ("refreshed") or ends ("ended", "expired"). */
export function onChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function notify(reason) {
  for (const fn of listeners) fn(reason, state);
}

/** Keep a token pair from signup, login or refresh. */
export function start(pair, user = null) {
  state = { access: pair.access_token, refresh: pair.refresh_token, user: user || (state && state.user) || null };
  save();
  schedule();
  notify("started");
}

export function setUser(user) {
  if (!state) return;
  state.user = user;
  save();
  notify("user");
}

export function end(reason = "ended") {
  state = null;
  save();
  clearTimeout(timer);
  notify(reason);
}

/** Refresh once at a time: callers racing for a new token share the same request. */
export function refresh() {
  if (!state) return Promise.reject(new ApiError("You are not signed in.", { code: "unauthorized", status: 401 }));
  if (!inflight) {
    const used = state.refresh;
    inflight = send("POST", "/auth/refresh", { token: used })
      .then((pair) => {
        state = { ...state, access: pair.access_token, refresh: pair.refresh_token };
        save();
        schedule();
        notify("refreshed");
        return state.access;
      })
      .catch((err) => {
        // 401: the refresh token is spent, expired or revoked; only a new login helps. Other errors
        // (network, 429, 503) are passing: keep the session and try again a little later.
        if (err.status === 401) end("expired");
        else retryLater(15_000);
        throw err;
      })
      .finally(() => {
        inflight = null;
      });
  }
  return inflight;
}

function retryLater(ms) {
  clearTimeout(timer);
  timer = setTimeout(() => refresh().catch(() => {}), ms);
}

/** Refresh a minute before expiry (or at 80 % of a shorter lifetime). */
function schedule() {
  clearTimeout(timer);
  if (!state) return;
  const { exp, iat } = claims(state.access);
  if (!exp) return;
  const now = Date.now() / 1000;
  const lifetime = iat ? exp - iat : exp - now;
  const margin = Math.min(60, lifetime * 0.2);
  const delay = Math.max(1, exp - margin - now) * 1000;
  timer = setTimeout(() => refresh().catch(() => {}), Math.min(delay, 2 ** 31 - 1));
}

if (state) schedule();
