// The page: sign up / log in, the project list, and one open project at a time (#/projects/<id> in the URL).

import * as api from "./api.js";
import { $, bindForm, h, notice, noticeError } from "./dom.js";
import { bindNewFileForm, fetchProject, ProjectView } from "./project.js";
import * as realtime from "./realtime.js";
import * as session from "./session.js";

const ROOM_EVENTS = ["USER_JOIN", "USER_LEAVE", "FILE_CHANGE", "JOB_UPDATE"];
const STATE_TEXT = {
  offline: "Not signed in",
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  disconnected: "Disconnected",
};

let view = null; // the open ProjectView

function showSignedIn(signedIn) {
  $("#auth-view").hidden = signedIn;
  $("#workspace-view").hidden = !signedIn;
  $("#logout").hidden = !signedIn;
  const user = session.current() && session.current().user;
  $("#whoami").textContent = signedIn && user ? `${user.name} <${user.email}>` : "";
}

async function enter(pair, user) {
  session.start(pair, user);
  if (!user) session.setUser(await api.auth.me());
  showSignedIn(true);
  realtime.connect();
  await loadProjects();
  await route();
}

// ---- auth -----------------------------------------------------------------------------------------------------

bindForm($("#login-form"), async (data) => {
  const pair = await api.auth.login({ email: data.get("email"), password: data.get("password") });
  $("#login-form").reset();
  await enter(pair, null);
});

bindForm($("#signup-form"), async (data) => {
  const body = { email: data.get("email"), password: data.get("password") };
  if (data.get("name")) body.name = data.get("name");
  const result = await api.auth.signup(body);
  $("#signup-form").reset();
  await enter(result, result.user);
});

$("#logout").addEventListener("click", async () => {
  const refresh = session.current() && session.current().refresh;
  try {
    await api.auth.logout(refresh);
  } catch (err) {
    noticeError(err); // signed out here all the same
  }
  session.end();
});

session.onChange((reason) => {
  if (reason !== "ended" && reason !== "expired") return;
  closeProject();
  realtime.disconnect();
  showSignedIn(false);
  if (reason === "expired") notice("Your session has ended. Please log in again.");
});

// ---- projects -------------------------------------------------------------------------------------------------

async function loadProjects() {
  try {
    const page = await api.projects.list();
    const openId = view ? view.id : null;
    $("#projects-empty").hidden = page.items.length > 0;
    $("#projects-more").hidden = page.total <= page.items.length;
    $("#projects-more").textContent = `Showing ${page.items.length} of ${page.total}.`;
    $("#projects").replaceChildren(...page.items.map((p) => h("li", { "aria-current": p.id === openId ? "true" : null },
      h("a", { href: `#/projects/${p.id}`, "aria-label": `Open project ${p.name}` },
        h("span", { class: "project-name", text: p.name }),
        h("span", { class: "badge", text: p.role })))));
  } catch (err) {
    noticeError(err);
  }
}

bindForm($("#new-project-form"), async (data) => {
  const body = { name: String(data.get("name") || "").trim() };
  const description = String(data.get("description") || "").trim();
  if (description) body.description = description;
  const project = await api.projects.create(body);
  $("#new-project-form").reset();
  await loadProjects();
  location.hash = `#/projects/${project.id}`;
});

bindNewFileForm(() => view);

function closeProject() {
  if (view) view.close();
  view = null;
  $("#project-view").hidden = true;
  $("#no-project").hidden = false;
}

async function openProject(id) {
  if (view && view.id === id) return;
  closeProject();
  let project;
  try {
    project = await fetchProject(id);
  } catch (err) {
    noticeError(err);
    location.hash = "";
    return;
  }
  view = new ProjectView(project, session.current().user);
  $("#no-project").hidden = true;
  $("#project-view").hidden = false;
  loadProjects();
  try {
    await view.start();
  } catch (err) {
    noticeError(err);
  }
}

async function route() {
  if (!session.current()) return;
  const match = /^#\/projects\/(\d+)$/.exec(location.hash);
  if (match) await openProject(Number(match[1]));
  else {
    closeProject();
    loadProjects();
  }
}

window.addEventListener("hashchange", route);
$("#close-project").addEventListener("click", () => (location.hash = ""));

// ---- live events ----------------------------------------------------------------------------------------------

for (const event of ROOM_EVENTS) realtime.on(event, (payload) => view && view.handle(event, payload));

realtime.on("MEMBERSHIP_CHANGED", (payload) => {
  loadProjects();
  if (!view || payload.project_id !== view.id) return;
  if (payload.role === null || payload.role === undefined) {
    notice(`You no longer have access to ${view.project.name}.`);
    location.hash = "";
  } else {
    view.roleChanged(payload.role);
  }
});

realtime.onConnect(() => {
  if (view) view.rejoin();
});

realtime.onState((state, detail) => {
  const el = $("#connection");
  el.dataset.state = state;
  $("#connection-text").textContent = STATE_TEXT[state] || state;
  el.title = detail || "";
  $("#reconnect").hidden = state !== "disconnected";
  if (view && state !== "connected") view.offline();
  if (state === "disconnected" && detail) notice(detail);
});
$("#reconnect").addEventListener("click", () => realtime.reconnect());

$("#notice-close").addEventListener("click", () => ($("#notice").hidden = true));

window.addEventListener("beforeunload", (event) => {
  // Edits typed while offline that have not reached the server yet: let the browser ask before they are lost.
  if (view && view.editor.dirty) event.preventDefault();
});

// ---- start ----------------------------------------------------------------------------------------------------

async function resume() {
  if (!session.current()) return showSignedIn(false);
  try {
    session.setUser(await api.auth.me());
  } catch (err) {
    if (!session.current()) return showSignedIn(false);
    noticeError(err);
  }
  showSignedIn(true);
  realtime.connect();
  await loadProjects();
  await route();
}

resume();
