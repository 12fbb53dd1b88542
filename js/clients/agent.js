// A real socket.io-client (npm) driven line by line from a Python test.
// usage: node agent.js <url> <token|-> [websocket|polling]
// stdout: one JSON object per line: {type: connect|connect_error|disconnect|event|ack|flooded, ...}
// stdin:  {op: "emit", id, event, payload, timeout?} | {op: "flood", event, payloads: [...], times}
//         | {op: "burst", id, event, payloads: [...], times, timeout?} | {op: "drop"} | {op: "reconnect"} | {op: "close"}
"use strict";
const { io } = require("socket.io-client");
const readline = require("readline");

const [url, token, transport] = process.argv.slice(2);
const socket = io(url, {
  auth: token && token !== "-" ? { token } : {},
  transports: [transport || "websocket"],
  reconnectionDelay: 200,
  reconnectionDelayMax: 1000,
  // Keep the cookies the server side sets, as a browser does on its own origin: a sticky proxy's session cookie
  // (deploy/haproxy.cfg) must come back with every long-polling request. In Node this turns on a cookie jar.
  withCredentials: true,
});
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

socket.on("connect", () => out({ type: "connect", id: socket.id }));
socket.on("connect_error", (err) => out({ type: "connect_error", message: err.message, data: err.data || null }));
socket.on("disconnect", (reason) => out({ type: "disconnect", reason }));
socket.onAny((event, ...args) => out({ type: "event", event, args }));

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const cmd = JSON.parse(line);
  if (cmd.op === "emit") {
    socket.timeout(cmd.timeout || 10000).emit(cmd.event, cmd.payload, (err, ack) =>
      out({ type: "ack", id: cmd.id, error: err ? err.message : null, ack: ack === undefined ? null : ack }));
  } else if (cmd.op === "flood") {
    // fire-and-forget, as fast as the client can write: what a runaway editor would do
    for (let i = 0; i < cmd.times; i++) socket.emit(cmd.event, cmd.payloads[i % cmd.payloads.length]);
    out({ type: "flooded", count: cmd.times });
  } else if (cmd.op === "burst") {
    // every event written at once, each with its ack callback: acks come back as {type: "ack", id: "<id>:<i>"}
    for (let i = 0; i < cmd.times; i++) {
      socket.timeout(cmd.timeout || 30000).emit(cmd.event, cmd.payloads[i % cmd.payloads.length], (err, ack) =>
        out({ type: "ack", id: `${cmd.id}:${i}`, error: err ? err.message : null, ack: ack === undefined ? null : ack }));
    }
    out({ type: "burst", id: cmd.id, count: cmd.times });
  } else if (cmd.op === "drop") {
    socket.disconnect();  // the client goes away until "reconnect" (what a network drop looks like to the server)
    out({ type: "dropped" });
  } else if (cmd.op === "reconnect") {
    socket.connect();
  } else if (cmd.op === "close") {
    socket.disconnect();
    setTimeout(() => process.exit(0), 50);
  }
});
