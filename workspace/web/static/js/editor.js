// The editor of one file, co-edited live: CodeMirror 6 on the file's Yjs document, synced over the document's own
// Socket.IO namespace (`/yjs|<project_id>/<path>`) by the y-socket.io provider (all in the bundle ../dist/editor.js,
// built from js/editor/ by `make bundle`). Every keystroke is merged on every screen; there is no save and no
// conflict. Other users' carets and selections, with their names and colours, come from Yjs awareness.

import { openCollabEditor } from "../dist/editor.js";
import * as api from "./api.js";
import { $, userColour } from "./dom.js";
import { Refusals } from "./realtime.js";
import * as session from "./session.js";

const STATUS_TEXT = {
  connecting: "Connecting…",
  connected: "Syncing…",
  synced: "Live",
  reconnecting: "Offline: your edits are kept here and sync when the connection is back",
  disconnected: "Offline: your edits are kept here and sync when the connection is back",
};

/** Our look at other people's screens: the caret's name tag and selection colour. */
export function awarenessUser(me) {
  const colour = userColour(me.id);
  return { name: me.name || me.email || `User ${me.id}`, color: colour,
    colorLight: colour.replace(/\)$/, " / 0.22)") };
}

export class Editor {
  constructor({ projectId, me, canEdit }) {
    this.projectId = projectId;
    this.me = me;
    this.canEdit = canEdit;
    this.host = $("#editor");
    this.path = null;
    this.version = null;
    this.session = null; // the CollabEditor of the open file
    this.refusals = null;
    this.show();
  }

  destroy() {
    this.close();
  }

  /** Edits made while offline that have not reached the server yet (the page asks before it is left). */
  get dirty() {
    return Boolean(this.session && this.session.unsent);
  }

  setCanEdit(canEdit) {
    this.canEdit = canEdit;
    if (this.session) this.session.setReadOnly(!canEdit);
    this.show();
  }

  async open(path) {
    // REST first: it says whether the file exists and we may read it (and its version) in the contract's words.
    const file = await api.projects.file(this.projectId, path);
    this.close();
    this.path = file.path;
    this.version = file.version;
    this.host.replaceChildren();
    this.session = openCollabEditor({
      parent: this.host,
      url: location.origin,
      room: `${this.projectId}/${file.path}`,
      token: () => session.accessToken(),
      user: awarenessUser(this.me),
      readOnly: !this.canEdit,
      onStatus: (status, detail) => this.statusChanged(status, detail),
    });
    this.refusals = new Refusals(this.session.socket, (state, text) => this.statusChanged(state, text));
    this.show();
    this.session.focus();
  }

  close() {
    if (this.refusals) this.refusals.stop();
    if (this.session) this.session.destroy();
    this.session = null;
    this.refusals = null;
    this.path = null;
    this.version = null;
    this.host.replaceChildren();
    this.status("");
    this.show();
  }

  statusChanged(status, detail) {
    if (status === "refused") {
      this.refusals.handle(detail);
    } else if (status === "error") {
      // A refused update or awareness message (yjs-error): the document is unchanged on the server.
      const error = detail || {};
      const text = error.code === "forbidden" ? "Your role does not allow editing this file; nothing was changed."
        : error.message || error.code || "The server refused an edit.";
      this.status(text, true);
    } else if (status === "disconnected" && typeof detail === "string" && detail) {
      this.status(detail, true); // a refusal with its reason
    } else if (STATUS_TEXT[status]) {
      this.status(STATUS_TEXT[status], status === "reconnecting" || status === "disconnected");
    }
  }

  /** FILE_CHANGE from the room: the text itself arrives through the document; here only version and deletion. */
  remoteChange(event) {
    if (event.path !== this.path) return;
    if (event.deleted) {
      const by = (event.user && event.user.name) || "someone";
      this.close();
      this.status(`${by} deleted this file.`, true);
      return;
    }
    if (event.version != null && (this.version == null || event.version > this.version)) {
      this.version = event.version;
      this.show();
    }
  }

  /** The room connection came back: the document's own connection resyncs by itself, unless it had given up. */
  resync() {
    if (this.session) this.session.reconnect();
  }

  status(text, isError = false) {
    const el = $("#sync-state");
    el.textContent = text;
    el.classList.toggle("error", isError);
  }

  show() {
    const open = this.path !== null;
    $("#file-path").textContent = open ? this.path : "No file open";
    $("#file-version").textContent = open && this.version != null ? `v${this.version}` : "";
    $("#read-only-note").hidden = this.canEdit || !open;
    $("#editor-empty").hidden = open;
  }
}
