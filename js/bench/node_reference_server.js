// The reference: a minimal Node socket.io server doing the same broadcast as ours (join a room, relay
// CURSOR_UPDATE / FILE_CHANGE to the room except the sender, with a per-room seq, ack the sender). No auth, no
// persistence: the upper bound of what socket.io on Node does on this machine. socket.io leaves websocket
// compression off by default, as ours does.  usage: node node_reference_server.js <port>
"use strict";
const { Server } = require("socket.io");

const port = Number(process.argv[2] || 3000);
const io = new Server(port, { cors: { origin: "*" } });
let seq = 0;
let version = 0;
io.on("connection", (socket) => {
  socket.on("join", (p, ack) => { socket.join("project:" + p.project_id); ack && ack({ ok: true, presence: [], seq }); });
  socket.on("CURSOR_UPDATE", (p, ack) => {
    seq++;
    socket.to("project:" + p.project_id).emit("CURSOR_UPDATE", { ...p, user: { id: 1, name: "bench" }, seq });
    ack && ack({ ok: true, seq });
  });
  socket.on("FILE_CHANGE", (p, ack) => {
    seq++;
    version++;
    socket.to("project:" + p.project_id).emit("FILE_CHANGE", { project_id: p.project_id, path: p.path, version,
      content: p.content, user: { id: 1, name: "bench" }, at: new Date().toISOString(), seq });
    ack && ack({ ok: true, version });
  });
});
console.log(JSON.stringify({ listening: port }));
