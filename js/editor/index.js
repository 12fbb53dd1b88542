// The co-editing editor of the web client: CodeMirror 6 bound to a Yjs document (y-codemirror.next) that the
// y-socket.io provider keeps in sync with the server, remote carets and selections drawn from Yjs awareness.
//
// Bundled by esbuild into workspace/web/static/dist/editor.js (`make bundle`); the page imports that file as an
// ES module. This module knows nothing of the page: it takes a parent element, a room and callbacks.

import { defaultKeymap, indentWithTab } from "@codemirror/commands";
import { Compartment, EditorState } from "@codemirror/state";
import {
  drawSelection, EditorView, highlightActiveLine, highlightActiveLineGutter, highlightSpecialChars, keymap,
  lineNumbers,
} from "@codemirror/view";
import { yCollab, yUndoManagerKeymap } from "y-codemirror.next";
import { removeAwarenessStates } from "y-protocols/awareness";
import { SocketIOProvider } from "y-socket.io";
import * as Y from "yjs";

/** The name of the document's shared text (the contract: the file's text is the `Y.Text` named `content`). */
export const TEXT_NAME = "content";

const theme = EditorView.theme({
  "&": { height: "100%", fontSize: "0.9rem", backgroundColor: "#fff" },
  "&.cm-focused": { outline: "2px solid #9bb7e6" },
  ".cm-scroller": { fontFamily: "var(--mono, monospace)", lineHeight: "1.45" },
  // Room above the first line for the name tag of a caret there (the scroller would clip it).
  ".cm-content": { paddingTop: "1.1rem" },
  // Names over remote carets stay visible (the library shows them only on hover): who is where is the point.
  ".cm-ySelectionInfo": { opacity: "1", top: "-1.25em", padding: "1px 4px", borderRadius: "3px 3px 3px 0",
    fontFamily: "system-ui, sans-serif", fontSize: "0.72rem", zIndex: "5" },
});

/**
 * Open one file for co-editing.
 *
 * @param {object} options
 * @param {HTMLElement} options.parent   where the editor goes
 * @param {string} options.url           the server's origin (the provider adds `/yjs|<room>` itself)
 * @param {string} options.room          `<project_id>/<path>`
 * @param {() => string} options.token   the current access token, read on every (re)connect
 * @param {{name: string, color: string, colorLight?: string}} options.user  shown at our caret on other screens
 * @param {boolean} [options.readOnly]   viewers: the document is shown and follows live, typing is off
 * @param {string} [options.label]       the accessible name of the text area
 * @param {(status: string, detail?: any) => void} [options.onStatus]
 *        "connecting" | "connected" | "synced" | "disconnected" | "refused" (detail: the connect_error) |
 *        "error" (detail: the server's yjs-error `{code, message}`)
 * @returns {CollabEditor}
 */
export function openCollabEditor({ parent, url, room, token, user, readOnly = false, label = "File content",
  onStatus = () => {} }) {
  return new CollabEditor({ parent, url, room, token, user, readOnly, label, onStatus });
}

export class CollabEditor {
  constructor({ parent, url, room, token, user, readOnly, label, onStatus }) {
    this.doc = new Y.Doc();
    this.text = this.doc.getText(TEXT_NAME);
    this.onStatus = onStatus;
    this.provider = new SocketIOProvider(url, room, this.doc, {
      autoConnect: false,
      // A function, so every reconnect presents the newest access token rather than the first one.
      auth: (cb) => cb({ token: token() }),
      // Every byte goes through the server, which checks the role on each update; a BroadcastChannel between
      // tabs would route around it.
      disableBc: true,
    }, { reconnectionDelay: 500, reconnectionDelayMax: 5000 });
    this.awareness = this.provider.awareness;
    this.awareness.setLocalStateField("user", user);
    this.socket = this.provider.socket;
    // A server may send its sync-step-1 in its connect handler, so "synced" can come before "connected".
    this.provider.on("status", ({ status }) => this.onStatus(
      status === "connected" && this.provider.synced ? "synced" : status));
    // Edits made while offline stay in the document and go out with the next sync; until then they are unsent.
    this.unsent = false;
    this.doc.on("update", (_update, origin) => {
      if (origin !== this.provider && !this.socket.connected) this.unsent = true;
    });
    this.provider.on("sync", (synced) => {
      if (!synced) return;
      this.unsent = false;
      this.onStatus("synced");
    });
    this.socket.on("connect_error", (err) => this.onStatus("refused", err));
    this.socket.on("yjs-error", (error) => this.onStatus("error", error));

    this.editable = new Compartment();
    // The page's Content-Security-Policy allows no inline styles (style-src 'self'). CodeMirror (style-mod) puts
    // its styles in a <style> tag when the editor is in a document, which that forbids; in a shadow root it adopts
    // constructable stylesheets, which CSP does not govern. So the editor lives in a shadow root of `parent`.
    const root = parent.shadowRoot || parent.attachShadow({ mode: "open" });
    const host = document.createElement("div");
    host.style.height = "100%";
    root.replaceChildren(host);
    this.styles = cssomStyles(root);
    this.view = new EditorView({
      root,
      parent: host,
      state: EditorState.create({
        doc: this.text.toString(),
        extensions: [
          lineNumbers(), highlightActiveLineGutter(), highlightSpecialChars(), drawSelection(),
          highlightActiveLine(), EditorView.lineWrapping, theme,
          EditorView.contentAttributes.of({ "aria-label": label }),
          keymap.of([...yUndoManagerKeymap, ...defaultKeymap, indentWithTab]),
          yCollab(this.text, this.awareness),
          this.editable.of(editableExtensions(!readOnly)),
        ],
      }),
    });
    this.provider.connect();
  }

  /** The document's text as this client has it now. */
  get value() {
    return this.text.toString();
  }

  get connected() {
    return this.socket.connected;
  }

  setReadOnly(readOnly) {
    this.view.dispatch({ effects: this.editable.reconfigure(editableExtensions(!readOnly)) });
  }

  /** Connect again after the server refused the handshake (socket.io does not retry refusals by itself). While
   * socket.io is connected or still retrying (`active`), nothing: a second connect() would send the namespace a
   * second CONNECT, which the server answers by refusing one of them. */
  reconnect() {
    if (!this.socket.active) this.socket.connect();
  }

  focus() {
    this.view.focus();
  }

  destroy() {
    // Tell the others our caret is gone while the socket is still open (servers need not drop it on disconnect).
    removeAwarenessStates(this.awareness, [this.doc.clientID], "closed");
    this.provider.destroy();
    this.styles.disconnect();
    this.view.destroy();
    this.doc.destroy();
  }
}

/**
 * The same CSP blocks style attributes set as markup (y-codemirror.next colours carets, name tags and selections
 * with `style="..."` attributes); styles set through the CSSOM are allowed. This re-applies every blocked style
 * attribute under `root` through `element.style`, as elements appear or change. Returns the MutationObserver.
 */
function cssomStyles(root) {
  const apply = (el) => {
    const css = el.getAttribute("style");
    if (css && !el.style.cssText) el.style.cssText = css;
  };
  const observer = new MutationObserver((records) => {
    for (const record of records) {
      if (record.type === "attributes") apply(record.target);
      for (const node of record.addedNodes) {
        if (node.nodeType !== 1) continue;
        apply(node);
        for (const el of node.querySelectorAll("[style]")) apply(el);
      }
    }
  });
  observer.observe(root, { subtree: true, childList: true, attributes: true, attributeFilter: ["style"] });
  return observer;
}

function editableExtensions(editable) {
  return [EditorView.editable.of(editable), EditorState.readOnly.of(!editable)];
}
