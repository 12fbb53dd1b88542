// Small DOM helpers: build elements, show errors where they belong, format numbers and times.

export const $ = (selector, root = document) => root.querySelector(selector);

/** h("li", {class: "x", text: "hi", onclick: fn, "aria-label": "y"}, child, ...) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") el.textContent = value;
    else if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") Object.assign(el.style, value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) el.append(child);
  }
  return el;
}

/** Show an error's sentence in `target` (a form's error line); an empty call clears it. */
export function showError(target, err = null) {
  target.textContent = err ? err.display || err.message || String(err) : "";
  target.hidden = !err;
}

let noticeTimer = null;

/** The page-wide notice line, for errors and news that belong to no form. */
export function notice(message, kind = "error") {
  const box = $("#notice");
  $("#notice-text").textContent = message;
  box.dataset.kind = kind;
  box.hidden = false;
  clearTimeout(noticeTimer);
  if (kind !== "error") noticeTimer = setTimeout(() => (box.hidden = true), 6000);
}

export function noticeError(err) {
  notice(err.display || err.message || String(err), "error");
}

export function formatBytes(n) {
  if (n == null) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** A stable, readable colour per user id (golden-angle hues). */
export function userColour(id) {
  return `hsl(${(Number(id) * 137.508) % 360}deg 70% 42%)`;
}

/** Run a form's async submit with its button disabled and its error line filled on failure. */
export function bindForm(form, handler) {
  const error = form.querySelector(".form-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    showError(error);
    button.disabled = true;
    try {
      await handler(new FormData(form));
    } catch (err) {
      showError(error, err);
    } finally {
      button.disabled = false;
    }
  });
}

export function newKey() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}
