// The plain-text editor of one file. Saves are FILE_CHANGE socket events carrying the version they were based on;
// a stale base is a conflict, shown with the choice to load the newer version (or overwrite it). Others' saves of
// the open file replace its text live when there is nothing unsaved here. Other users' carets are drawn by Cursors.

import * as api from "./api.js";
import { Cursors } from "./cursors.js";
import { $, showError } from "./dom.js";
import * as realtime from "./realtime.js";

const SAVE_DEBOUNCE_MS = 400;
const SAVE_MAX_WAIT_MS = 2000;

/** Where `pos` lands after `before` became `after` (edits before it shift it; edits after it do not). */
export function moveCaret(before, after, pos) {
  let head = 0;
  while (head < before.length && head < after.length && before[head] === after[head]) head++;
  if (pos <= head) return pos;
  let tail = 0;
  while (tail < before.length - head && tail < after.length - head
         && before[before.length - 1 - tail] === after[after.length - 1 - tail]) tail++;
  if (pos >= before.length - tail) return pos + after.length - before.length;
  return after.length - tail;
}

export class Editor {
  constructor({ projectId, me, canEdit, onSaved }) {
    this.projectId = projectId;
    this.me = me;
    this.canEdit = canEdit;
    this.onSaved = onSaved;
    this.textarea = $("#editor");
    this.path = null;
    this.version = 0;
    this.saved = ""; // the text of `version` as the server has it
    this.saving = false;
    this.conflict = null; // {version, by} while our edits rest on an outdated version
    this.saveTimer = null;
    this.firstUnsavedAt = 0;
    this.cursors = new Cursors(this.textarea, $("#cursor-layer"), me);
    this.cursors.setProject(projectId);
    this.listeners = [
      [this.textarea, "input", () => this.edited()],
      [$("#save-file"), "click", () => this.save()],
      [$("#conflict-load"), "click", () => this.reload()],
      [$("#conflict-overwrite"), "click", () => this.overwrite()],
    ];
    for (const [el, type, fn] of this.listeners) el.addEventListener(type, fn);
    this.show();
  }

  destroy() {
    for (const [el, type, fn] of this.listeners) el.removeEventListener(type, fn);
    clearTimeout(this.saveTimer);
    this.cursors.destroy();
    this.textarea.value = "";
  }

  get dirty() {
    return this.path !== null && this.textarea.value !== this.saved;
  }

  setCanEdit(canEdit) {
    this.canEdit = canEdit;
    this.show();
  }

  async open(path) {
    if (this.dirty && !this.conflict) await this.save(); // switching files must not drop unsaved edits
    const file = await api.projects.file(this.projectId, path);
    clearTimeout(this.saveTimer);
    this.path = file.path;
    this.conflict = null;
    this.load(file.content, file.version);
    this.cursors.setPath(this.path);
    this.status(`Version ${file.version}`);
    this.textarea.focus();
  }

  close() {
    this.path = null;
    this.saved = "";
    this.textarea.value = "";
    this.cursors.setPath(null);
    this.show();
  }

  load(content, version) {
    const el = this.textarea;
    const [start, end] = [el.selectionStart, el.selectionEnd];
    const before = el.value;
    el.value = content;
    if (document.activeElement === el) {
      el.setSelectionRange(moveCaret(before, content, start), moveCaret(before, content, end));
    }
    this.saved = content;
    this.version = version;
    this.show();
    this.cursors.render();
  }

  edited() {
    if (!this.canEdit || this.conflict) return this.show();
    this.status("Unsaved changes");
    const now = Date.now();
    if (!this.firstUnsavedAt) this.firstUnsavedAt = now;
    clearTimeout(this.saveTimer);
    // Save after a pause in typing, and at least every SAVE_MAX_WAIT_MS while typing goes on.
    const wait = Math.min(SAVE_DEBOUNCE_MS, Math.max(0, this.firstUnsavedAt + SAVE_MAX_WAIT_MS - now));
    this.saveTimer = setTimeout(() => this.save(), wait);
  }

  /** Send the text as FILE_CHANGE based on the version we have; one save in flight at a time. */
  async save(baseVersion = this.version) {
    clearTimeout(this.saveTimer);
    // In a conflict nothing is saved until the person chose (overwrite() clears the conflict first).
    if (!this.path || !this.canEdit || this.saving || this.conflict) return;
    if (!this.dirty && baseVersion === this.version) return;
    const content = this.textarea.value;
    this.saving = true;
    this.firstUnsavedAt = 0;
    this.status("Saving…");
    try {
      const ack = await realtime.request("FILE_CHANGE",
        { project_id: this.projectId, path: this.path, content, base_version: baseVersion });
      this.saved = content;
      this.version = ack.version;
      this.conflict = null;
      this.status(`Saved version ${ack.version}`);
      if (this.onSaved) this.onSaved({ path: this.path, version: ack.version, size: byteLength(content) });
    } catch (err) {
      if (err.code === "conflict") {
        const current = err.details && err.details.current_version;
        // A conflict answered after we already loaded that version (the banner came first) is settled.
        if (current == null || current > this.version) {
          this.conflict = { version: current, by: null, message: err.display };
        }
      } else {
        // No retry loop here: the next edit, the Save button or the reconnect (resync) tries again.
        this.status(`Not saved: ${err.display}`, true);
      }
      return;
    } finally {
      this.saving = false;
      this.show();
    }
    // Typing went on while the save was in flight: save the rest too.
    if (this.dirty && !this.conflict) this.edited();
  }

  /** Conflict resolution: take the newer version from the server; our unsaved text is dropped. */
  async reload() {
    if (!this.path) return;
    try {
      const file = await api.projects.file(this.projectId, this.path);
      this.conflict = null;
      this.load(file.content, file.version);
      this.status(`Loaded version ${file.version}`);
    } catch (err) {
      this.status(`Could not load: ${err.display}`, true);
    }
  }

  /** Conflict resolution the other way: save our text on top of the newer version. */
  overwrite() {
    if (!this.conflict || this.conflict.version == null) return this.reload();
    const base = this.conflict.version;
    this.conflict = null;
    return this.save(base);
  }

  /** FILE_CHANGE from someone else. */
  remoteChange(event) {
    if (event.path !== this.path || event.version <= this.version) return;
    const by = (event.user && event.user.name) || "someone";
    if (event.deleted) {
      this.conflict = null;
      this.status(`${by} deleted this file.`, true);
      this.close();
      return;
    }
    if (this.dirty || this.saving) {
      this.conflict = { version: event.version, by,
        message: `${by} saved version ${event.version} while you were editing version ${this.version}.` };
      this.show();
      return;
    }
    if (typeof event.content === "string") {
      this.load(event.content, event.version);
      this.status(`Version ${event.version} by ${by}`);
    } else {
      this.reload();
    }
  }

  /** After a reconnect we may have missed changes: take the server's text unless we have unsaved edits. */
  async resync() {
    if (!this.path) return;
    if (this.dirty) return this.save();
    return this.reload();
  }

  status(text, isError = false) {
    const el = $("#save-state");
    el.textContent = text;
    el.classList.toggle("error", isError);
  }

  show() {
    const open = this.path !== null;
    $("#file-path").textContent = open ? this.path : "No file open";
    $("#file-version").textContent = open ? `v${this.version}` : "";
    this.textarea.disabled = !open;
    this.textarea.readOnly = !this.canEdit;
    $("#save-file").disabled = !open || !this.canEdit;
    $("#read-only-note").hidden = this.canEdit || !open;
    const banner = $("#conflict");
    if (this.conflict) {
      banner.hidden = false;
      showError($("#conflict-text"), { display: this.conflict.message || "Someone else saved a newer version." });
      $("#conflict-load").textContent = this.conflict.version != null
        ? `Load version ${this.conflict.version} (drop my edits)` : "Load the newer version";
    } else {
      banner.hidden = true;
    }
  }
}

export const byteLength = (text) => new TextEncoder().encode(text).length;
