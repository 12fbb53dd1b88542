// A real Yjs editor (npm yjs + y-socket.io's SocketIOProvider, unchanged) driven line by line from a Python test.
// usage: node yjs_agent.js <url> <project_id>/<path> <token|->
// stdout: one JSON object per line: {type: connect|connect_error|disconnect|synced|text|yjs-error|awareness|done}
//   `text` is printed after every change of the document's Y.Text "content", with the whole text.
// stdin:  {op: "type", text, at?: "start"|"end"|number, delay_ms?}  one character per transaction, like keystrokes
//         {op: "insert", index, text} | {op: "delete", index, length} | {op: "text"}
//         {op: "raw", event, hex}   emit raw bytes on the provider's socket (bad input tests)
//         {op: "awareness", state} | {op: "close"}
"use strict";
const Y = require("yjs");
const { SocketIOProvider } = require("y-socket.io");
const readline = require("readline");

const [url, room, token] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const doc = new Y.Doc();
const text = doc.getText("content");
const provider = new SocketIOProvider(url, room, doc, {
  auth: token && token !== "-" ? { token } : {},
  disableBc: true, // several agents run in one machine; BroadcastChannel would sync them behind the server's back
}, { reconnectionDelay: 200, reconnectionDelayMax: 1000 });
const socket = provider.socket;

socket.on("connect", () => out({ type: "connect" }));
socket.on("connect_error", (err) => out({ type: "connect_error", message: err.message, data: err.data || null }));
socket.on("disconnect", (reason) => out({ type: "disconnect", reason }));
socket.on("yjs-error", (error) => out({ type: "yjs-error", error }));
provider.on("synced", (synced) => { if (synced) out({ type: "synced", text: text.toString() }); });
text.observe(() => out({ type: "text", text: text.toString() }));
provider.awareness.on("change", () => {
  const states = {};
  provider.awareness.getStates().forEach((state, client) => { if (client !== doc.clientID) states[client] = state; });
  out({ type: "awareness", states });
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
let queue = Promise.resolve(); // commands run one after the other, typing included

async function run(cmd) {
  if (cmd.op === "type") {
    // The caret follows the typist's own last character, as an editor's does: a relative position tied to the
    // character on its left, so another person typing at the same spot lands before or after, never inside.
    let caret = null;
    for (const ch of cmd.text) {
      let at;
      if (caret) at = Y.createAbsolutePositionFromRelativePosition(caret, doc).index;
      else at = cmd.at === "start" ? 0 : typeof cmd.at === "number" ? cmd.at : text.length;
      text.insert(at, ch);
      caret = Y.createRelativePositionFromTypeIndex(text, at + ch.length, -1);
      if (cmd.delay_ms) await sleep(cmd.delay_ms);
    }
    out({ type: "done", op: "type" });
  } else if (cmd.op === "insert") {
    text.insert(cmd.index, cmd.text);
    out({ type: "done", op: "insert" });
  } else if (cmd.op === "delete") {
    text.delete(cmd.index, cmd.length);
    out({ type: "done", op: "delete" });
  } else if (cmd.op === "text") {
    out({ type: "text", text: text.toString() });
  } else if (cmd.op === "raw") {
    socket.emit(cmd.event, Buffer.from(cmd.hex, "hex"));
    out({ type: "done", op: "raw" });
  } else if (cmd.op === "awareness") {
    provider.awareness.setLocalState(cmd.state);
    out({ type: "done", op: "awareness" });
  } else if (cmd.op === "close") {
    provider.destroy();
    setTimeout(() => process.exit(0), 50);
  }
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const cmd = JSON.parse(line);
  queue = queue.then(() => run(cmd)).catch((err) => out({ type: "agent_error", message: String(err) }));
});
