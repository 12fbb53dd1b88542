// The open project's file list: loaded over REST, kept live by FILE_CHANGE events; opens a file in the editor.

import * as api from "./api.js";
import { $, formatBytes, formatTime, h, noticeError } from "./dom.js";

export class Files {
  constructor(projectId, { onOpen, canEdit }) {
    this.projectId = projectId;
    this.onOpen = onOpen;
    this.canEdit = canEdit;
    this.items = new Map();
    this.openPath = null;
    this.armedDelete = null;
  }

  async load() {
    const { items } = await api.projects.files(this.projectId);
    this.items = new Map(items.map((f) => [f.path, f]));
    this.render();
  }

  has(path) {
    return this.items.has(path);
  }

  /** A FILE_CHANGE (theirs from the room, ours from an ack). */
  changed({ path, version, size, deleted, user, at }) {
    if (deleted) {
      this.items.delete(path);
    } else {
      const old = this.items.get(path) || {};
      if (old.version != null && version < old.version) return;
      this.items.set(path, { ...old, path, version, size: size ?? old.size,
        updated_at: at || new Date().toISOString(), updated_by: user ? user.id : old.updated_by });
    }
    this.render();
  }

  setOpen(path) {
    this.openPath = path;
    this.render();
  }

  setCanEdit(canEdit) {
    this.canEdit = canEdit;
    this.render();
  }

  async remove(path) {
    if (this.armedDelete !== path) {
      // Two clicks to delete: the first only arms the button.
      this.armedDelete = path;
      this.render();
      return;
    }
    this.armedDelete = null;
    try {
      await api.projects.deleteFile(this.projectId, path);
      this.changed({ path, deleted: true });
    } catch (err) {
      noticeError(err);
      this.render();
    }
  }

  render() {
    const files = [...this.items.values()].sort((a, b) => a.path.localeCompare(b.path));
    $("#files-empty").hidden = files.length > 0;
    $("#files").replaceChildren(...files.map((f) => {
      const armed = this.armedDelete === f.path;
      return h("li", { "aria-current": f.path === this.openPath ? "true" : null },
        h("button", { type: "button", class: "link", "aria-label": `Open ${f.path}`,
          onclick: () => this.onOpen(f.path) },
          h("span", { class: "file-name", text: f.path })),
        h("span", { class: "muted small", title: formatTime(f.updated_at),
          text: `v${f.version}${f.size != null ? " · " + formatBytes(f.size) : ""}` }),
        this.canEdit ? h("button", { type: "button", class: armed ? "danger small" : "ghost small",
          "aria-label": armed ? `Confirm delete ${f.path}` : `Delete ${f.path}`, text: armed ? "Confirm" : "✕",
          onclick: () => this.remove(f.path) }) : null);
    }));
  }
}
