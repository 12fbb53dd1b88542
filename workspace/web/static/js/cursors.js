// Carets of the open file: ours sent as CURSOR_UPDATE (throttled; the contract lets the server drop or coalesce
// them anyway), theirs drawn as coloured markers with names over the textarea. Lines and columns are 1-based.

import { h, userColour } from "./dom.js";
import * as realtime from "./realtime.js";

const SEND_EVERY_MS = 100;
const TAB = 4; // matches `tab-size` in app.css

/** 1-based line and column of offset `pos` in `text`. */
export function lineColumn(text, pos) {
  const before = text.slice(0, pos);
  const line = before.split("\n").length;
  return { line, column: pos - before.lastIndexOf("\n") };
}

export class Cursors {
  constructor(textarea, layer, me) {
    this.textarea = textarea;
    this.layer = layer;
    this.me = me;
    this.projectId = null;
    this.path = null;
    this.remote = new Map(); // user id -> {user, path, line, column}
    this.lastSent = 0;
    this.lastKey = "";
    this.timer = null;
    this.measure = h("span", { class: "measure", "aria-hidden": "true", text: "x".repeat(64) });
    layer.parentElement.append(this.measure);
    const local = () => this.moved();
    this.listeners = [
      [textarea, "keyup", local], [textarea, "click", local], [textarea, "input", () => { this.render(); local(); }],
      [textarea, "select", local], [textarea, "focus", local],
      [textarea, "scroll", () => this.render()], [window, "resize", () => this.render()],
    ];
    for (const [el, type, fn] of this.listeners) el.addEventListener(type, fn);
  }

  destroy() {
    for (const [el, type, fn] of this.listeners) el.removeEventListener(type, fn);
    clearTimeout(this.timer);
    this.measure.remove();
    this.layer.replaceChildren();
  }

  setProject(projectId) {
    this.projectId = projectId;
  }

  setPath(path) {
    this.path = path;
    this.lastKey = "";
    this.render();
    if (path) this.moved();
  }

  /** Our caret moved: send at most one update per SEND_EVERY_MS, always the latest position. */
  moved() {
    if (!this.path) return;
    const wait = this.lastSent + SEND_EVERY_MS - performance.now();
    if (wait > 0) {
      if (!this.timer) this.timer = setTimeout(() => { this.timer = null; this.send(); }, wait);
      return;
    }
    this.send();
  }

  send() {
    const el = this.textarea;
    const caret = el.selectionDirection === "backward" ? el.selectionStart : el.selectionEnd;
    const { line, column } = lineColumn(el.value, caret);
    const key = `${this.path}:${line}:${column}`;
    if (key === this.lastKey || !this.path || this.projectId == null) return;
    this.lastKey = key;
    this.lastSent = performance.now();
    realtime.emit("CURSOR_UPDATE", { project_id: this.projectId, path: this.path, line, column });
  }

  /** CURSOR_UPDATE from the room. */
  update(event) {
    const user = event.user || {};
    if (user.id == null || user.id === this.me.id) return;
    this.remote.set(user.id, { user, path: event.path, line: event.line, column: event.column });
    this.render();
  }

  forget(userId) {
    if (this.remote.delete(userId)) this.render();
  }

  clear() {
    this.remote.clear();
    this.render();
  }

  render() {
    const markers = [];
    if (this.path) {
      const metrics = this.metrics();
      const lines = this.textarea.value.split("\n");
      for (const { user, path, line, column } of this.remote.values()) {
        if (path !== this.path) continue;
        const { x, y } = this.position(lines, line, column, metrics);
        const colour = userColour(user.id);
        const name = user.name || `User ${user.id}`;
        markers.push(h("div", {
          class: `cursor ${placement(lines, line, column, y)}`, role: "img",
          "aria-label": `${name}'s cursor at line ${line}, column ${column}`,
          dataset: { userId: user.id }, style: { left: `${x}px`, top: `${y}px`, height: `${metrics.lineHeight}px`,
            borderLeftColor: colour },
        }, h("span", { class: "cursor-name", text: name, style: { background: colour } })));
      }
    }
    this.layer.replaceChildren(...markers);
  }

  metrics() {
    const style = getComputedStyle(this.textarea);
    const lineHeight = parseFloat(style.lineHeight) || 1.4 * parseFloat(style.fontSize);
    return {
      lineHeight,
      charWidth: this.measure.getBoundingClientRect().width / 64 || 8,
      left: this.textarea.clientLeft + parseFloat(style.paddingLeft),
      top: this.textarea.clientTop + parseFloat(style.paddingTop),
    };
  }

  position(lines, line, column, m) {
    const text = lines[Math.min(Math.max(line, 1), lines.length) - 1] || "";
    let cols = 0;
    for (const ch of text.slice(0, Math.max(column, 1) - 1)) cols = ch === "\t" ? cols + TAB - (cols % TAB) : cols + 1;
    return {
      x: m.left + cols * m.charWidth - this.textarea.scrollLeft,
      y: m.top + (line - 1) * m.lineHeight - this.textarea.scrollTop,
    };
  }
}

/** Where a caret's name tag goes: after the caret when nothing follows it on its line (it covers no text), else
 * above it, or below it on the first visible line (the layer's edge would cut it off). */
function placement(lines, line, column, y) {
  const text = lines[line - 1];
  if (text === undefined || column > text.length) return "inline";
  return y < 16 ? "below" : "above";
}
