// The REST calls the page makes, with the session's access token. A 401 for an expired token is retried once
// after a refresh (a laptop waking from sleep misses the scheduled refresh).

import { send } from "./http.js";
import * as session from "./session.js";

export async function call(method, path, options = {}) {
  try {
    return await send(method, path, { ...options, token: session.accessToken() });
  } catch (err) {
    if (err.status === 401 && err.code === "token_expired" && session.current()) {
      const token = await session.refresh();
      return send(method, path, { ...options, token });
    }
    if (err.status === 401 && session.current()) session.end("expired");
    throw err;
  }
}

const enc = (path) => path.split("/").map(encodeURIComponent).join("/");

export const auth = {
  signup: (body) => send("POST", "/auth/signup", { body }),
  login: (body) => send("POST", "/auth/login", { body }),
  me: () => call("GET", "/auth/me"),
  logout: (refreshToken) => call("POST", "/auth/logout", { body: { refresh_token: refreshToken } }),
};

export const projects = {
  list: () => call("GET", "/projects/?page=1&per_page=100"),
  create: (body) => call("POST", "/projects/", { body }),
  get: (id) => call("GET", `/projects/${id}`),
  collaborators: (id) => call("GET", `/projects/${id}/collaborators`),
  invite: (id, body) => call("POST", `/projects/${id}/collaborators`, { body }),
  files: (id) => call("GET", `/projects/${id}/files`),
  file: (id, path) => call("GET", `/projects/${id}/files/${enc(path)}`),
  putFile: (id, path, body) => call("PUT", `/projects/${id}/files/${enc(path)}`, { body }),
  deleteFile: (id, path) => call("DELETE", `/projects/${id}/files/${enc(path)}`),
  jobs: (id) => call("GET", `/projects/${id}/jobs?page=1&per_page=5`),
};

export const jobs = {
  run: (body, key) => call("POST", "/jobs/run", { body, headers: { "Idempotency-Key": key } }),
  get: (id) => call("GET", `/jobs/${id}`),
  artifact: (id) => call("GET", `/jobs/${id}/artifact`, { raw: true, headers: { Accept: "application/zip" } }),
};
