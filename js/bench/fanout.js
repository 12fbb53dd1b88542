// Fan-out load generator: N receiver sockets + 1 sender in one project room; the sender emits COUNT events
// (CURSOR_UPDATE or FILE_CHANGE) keeping WINDOW unacknowledged; every receiver records each delivery's latency.
// Clients offer permessage-deflate as browsers do (ws's perMessageDeflate, threshold 0 = compress everything).
// usage: node fanout.js '<json config>'   config: {urls: [...], senderToken, receiverToken, projectId, n, count,
//        event, window, timeoutMs}; receivers are spread round-robin over urls, the sender uses urls[0].
// prints one JSON line: {delivered, expected, seconds, per_second, p50_ms, p99_ms, connected}
"use strict";
const { io } = require("socket.io-client");
const { performance } = require("perf_hooks");

const cfg = JSON.parse(process.argv[2]);
const opts = (token) => ({
  auth: { token },
  transports: ["websocket"],
  reconnection: false,
  perMessageDeflate: { threshold: 0 },
  timeout: 60000,
});
const expected = cfg.n * cfg.count;
const sentAt = new Float64Array(cfg.count);
const latencies = new Float64Array(expected);
let delivered = 0;
let started = 0;
let finishedAt = 0;

function indexOf(event, payload) {
  return event === "CURSOR_UPDATE" ? payload.line : Number(payload.content);
}

function connect(url, token) {
  return new Promise((resolve, reject) => {
    const s = io(url, opts(token));
    s.once("connect", () => {
      s.timeout(60000).emit("join", { project_id: cfg.projectId }, (err, ack) =>
        err || !ack || !ack.ok ? reject(new Error("join failed: " + JSON.stringify(err || ack))) : resolve(s));
    });
    s.once("connect_error", (e) => reject(e));
  });
}

function report(extra) {
  const got = latencies.subarray(0, delivered).sort();
  const pct = (p) => (got.length ? got[Math.min(got.length - 1, Math.floor(p * got.length))] : null);
  const seconds = ((finishedAt || performance.now()) - started) / 1000;
  console.log(JSON.stringify({ delivered, expected, seconds: +seconds.toFixed(3),
    per_second: Math.round(delivered / seconds), p50_ms: pct(0.5) && +pct(0.5).toFixed(2),
    p99_ms: pct(0.99) && +pct(0.99).toFixed(2), ...extra }));
}

async function main() {
  const receivers = [];
  for (let i = 0; i < cfg.n; i += 50) {  // connect in batches: a burst of 500 handshakes is not what we measure
    const batch = [];
    for (let j = i; j < Math.min(cfg.n, i + 50); j++) batch.push(connect(cfg.urls[j % cfg.urls.length], cfg.receiverToken));
    receivers.push(...(await Promise.all(batch)));
  }
  let done;
  const allDelivered = new Promise((resolve) => (done = resolve));
  for (const r of receivers) {
    r.on(cfg.event, (payload) => {
      const i = indexOf(cfg.event, payload);
      latencies[delivered++] = performance.now() - sentAt[i];
      if (delivered === expected) { finishedAt = performance.now(); done(); }
    });
  }
  const sender = await connect(cfg.urls[0], cfg.senderToken);
  started = performance.now();
  let next = 0;
  let inFlight = 0;
  const sendMore = () => {
    while (inFlight < cfg.window && next < cfg.count) {
      const i = next++;
      const payload = cfg.event === "CURSOR_UPDATE"
        ? { project_id: cfg.projectId, path: "bench.txt", line: i, column: 1 }
        : { project_id: cfg.projectId, path: "bench.txt", content: String(i) };
      inFlight++;
      sentAt[i] = performance.now();
      sender.timeout(60000).emit(cfg.event, payload, (err, ack) => {
        inFlight--;
        if (err || !ack || !ack.ok) { console.error("send failed", err && err.message, JSON.stringify(ack)); }
        sendMore();
      });
    }
  };
  sendMore();
  const timer = setTimeout(() => done(), cfg.timeoutMs);
  await allDelivered;
  clearTimeout(timer);
  report({ connected: receivers.length });
  process.exit(0);
}

main().catch((e) => { console.log(JSON.stringify({ error: String(e && e.message || e) })); process.exit(1); });
