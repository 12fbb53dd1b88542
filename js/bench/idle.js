// Capacity: open idle authenticated websocket clients to one server and hold them until stdin closes.
// usage: node idle.js <url> <token>; each stdin line "<k>" opens k more clients (100 handshakes at a time) and
// prints {"connected": total, "failed": m, "errors": {...}, "seconds": s}
"use strict";
const { io } = require("socket.io-client");
const readline = require("readline");

const [url, token] = [process.argv[2], process.argv[3]];
const sockets = [];
let failed = 0;
const errors = {};

function one() {
  return new Promise((resolve) => {
    const s = io(url, { auth: { token }, transports: ["websocket"], reconnection: false,
      perMessageDeflate: { threshold: 0 }, timeout: 30000 });
    let settled = false;
    const fail = (message) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      failed++;
      errors[message] = (errors[message] || 0) + 1;
      s.close();
      resolve();
    };
    // A session the server closes before the Socket.IO CONNECT completes emits neither event: never wait forever.
    const timer = setTimeout(() => fail("no answer in 40 s"), 40000);
    s.once("connect", () => { if (settled) return; settled = true; clearTimeout(timer); sockets.push(s); resolve(); });
    s.once("connect_error", (e) => fail(e.message));
    s.io.once("close", (reason) => fail("closed before connect: " + reason));
  });
}

async function open(k) {
  const started = Date.now();
  for (let i = 0; i < k; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(k, i + 100); j++) batch.push(one());
    await Promise.all(batch);
  }
  console.log(JSON.stringify({ connected: sockets.length, failed, errors, seconds: (Date.now() - started) / 1000 }));
}

let chain = Promise.resolve();
readline.createInterface({ input: process.stdin })
  .on("line", (line) => { chain = chain.then(() => open(Number(line))); })
  .on("close", () => chain.then(() => process.exit(0)));
