// One open project: joins its Socket.IO room, routes the room's events to the panels (presence, files, the
// co-editing editor, jobs, collaborators) and rejoins + resyncs after every reconnect.

import * as api from "./api.js";
import { $, bindForm, noticeError, notice } from "./dom.js";
import { Editor } from "./editor.js";
import { Files } from "./files.js";
import { Jobs } from "./jobs.js";
import { Members } from "./members.js";
import { Presence } from "./presence.js";
import * as realtime from "./realtime.js";

const CAN_EDIT = new Set(["owner", "collaborator"]);

export class ProjectView {
  constructor(project, me) {
    this.project = project;
    this.id = project.id;
    this.me = me;
    this.closed = false;
    this.joining = null;
    const canEdit = CAN_EDIT.has(project.role);
    this.presence = new Presence(me);
    this.editor = new Editor({ projectId: this.id, me, canEdit });
    this.files = new Files(this.id, { canEdit, onOpen: (path) => this.openFile(path) });
    this.jobs = new Jobs(this.id, { canRun: canEdit });
    this.members = new Members(this.id, { isOwner: project.role === "owner" });
    this.showHeader();
    $("#new-file-form").hidden = !canEdit;
  }

  async start() {
    await Promise.all([
      this.files.load(),
      this.members.load(),
      this.jobs.load().catch(noticeError), // the list is a convenience; its failure must not block the project
      this.join(),
    ]);
  }

  /** Enter the room; the ack's presence replaces ours (after a reconnect it is the only truth we have). */
  join() {
    if (this.closed || realtime.currentState().state !== "connected") return Promise.resolve();
    // Opening a project and (re)connecting can both ask at once: one join in flight is enough.
    this.joining = this.joining || realtime.request("join", { project_id: this.id })
      .then((ack) => this.presence.reset(ack.presence || []))
      .catch(noticeError)
      .finally(() => { this.joining = null; });
    return this.joining;
  }

  /** The connection dropped: who is online is unknown until we join again (carets live in the document's own
   * connection, which clears them itself when it drops). */
  offline() {
    this.presence.clear();
  }

  async rejoin() {
    await this.join();
    await Promise.all([this.files.load().catch(noticeError), this.editor.resync()]);
    this.jobs.resync();
  }

  async openFile(path) {
    try {
      await this.editor.open(path);
      this.files.setOpen(path);
    } catch (err) {
      noticeError(err);
    }
  }

  /** Create a file from the new-file form: an empty REST PUT (or open it when it exists already). */
  async createFile(path) {
    path = path.trim().replace(/^\/+/, "");
    if (!path) return;
    if (!this.files.has(path)) {
      const created = await api.projects.putFile(this.id, path, { content: "" });
      this.files.changed({ path: created.path, version: created.version, size: 0, user: this.me });
      path = created.path;
    }
    await this.openFile(path);
  }

  /** Route a room event; events of other projects are not ours. */
  handle(event, payload) {
    if (this.closed || !payload || payload.project_id !== this.id) return;
    switch (event) {
      case "USER_JOIN":
        this.presence.join(payload.user);
        break;
      case "USER_LEAVE":
        this.presence.leave(payload.user);
        break;
      case "FILE_CHANGE":
        this.files.changed({ ...payload, size: typeof payload.content === "string"
          ? new TextEncoder().encode(payload.content).length : undefined });
        this.editor.remoteChange(payload);
        if (payload.deleted && payload.path === this.files.openPath) this.files.setOpen(null);
        break;
      case "JOB_UPDATE":
        this.jobs.update(payload);
        break;
      case "MEMBERSHIP_CHANGED":
        this.roleChanged(payload.role);
        break;
      default:
    }
  }

  roleChanged(role) {
    this.project = { ...this.project, role };
    const canEdit = CAN_EDIT.has(role);
    this.editor.setCanEdit(canEdit);
    this.files.setCanEdit(canEdit);
    this.jobs.setCanRun(canEdit);
    this.members.setOwner(role === "owner");
    $("#new-file-form").hidden = !canEdit;
    this.showHeader();
    notice(`Your role in ${this.project.name} is now ${role}.`, "info");
  }

  showHeader() {
    $("#project-name").textContent = this.project.name;
    $("#project-description").textContent = this.project.description || "";
    $("#project-role").textContent = this.project.role;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    if (realtime.currentState().state === "connected") {
      realtime.request("leave", { project_id: this.id }).catch(() => {});
    }
    this.editor.destroy();
    this.jobs.destroy();
    this.presence.clear();
  }
}

/** The new-file form is bound once; it acts on the open project. */
export function bindNewFileForm(currentView) {
  const form = $("#new-file-form");
  bindForm(form, async (data) => {
    const view = currentView();
    if (view) await view.createFile(String(data.get("path") || ""));
    form.reset();
  });
}

export const fetchProject = (id) => api.projects.get(id);
