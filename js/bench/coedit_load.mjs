// Co-editing load generator: N editors in one document, each a Node `yjs` Y.Doc with the npm `y-socket.io`
// SocketIOProvider (the same client the web page bundles), typing in turn into the Y.Text "content".
// Latency of a keystroke = from the local insert on its editor to the moment every other editor's Y.Doc has applied
// it (one sample per keystroke and receiver). All editors live in this one process, so both ends read the same
// clock; a keystroke is recognised on arrival by its Yjs id (client, clock), read cheaply with Y.parseUpdateMeta.
//
// usage: node coedit_load.mjs '<json config>'   config: {url, room, tokens: [..] (cycled over the editors),
//   editors, keystrokes, warmup, intervalMs, awareness (also move the caret in awareness per keystroke, as
//   CodeMirror does), timeoutMs, expectLength (the text length that counts as loaded)}. Prints one JSON line: {editors, keystrokes, samples, expected, p50_ms, p99_ms,
//   max_ms, mean_ms, seconds, sync_ms} or {error}. With keystrokes 0 it only opens the document: {editors, sync_ms
//   (from creating the providers to every editor synced), length}. Bounded: gives up after timeoutMs.

import { performance } from "node:perf_hooks";
import { SocketIOProvider } from "y-socket.io";
import * as Y from "yjs";

const config = JSON.parse(process.argv[2]);
const { url, room, tokens, editors: n, keystrokes, warmup = 20, intervalMs = 20, awareness = true,
  timeoutMs = 60_000 } = config;
process.setMaxListeners(0); // every provider adds an exit listener

const guard = setTimeout(() => finish({ error: `gave up after ${timeoutMs} ms` }), timeoutMs);
const sent = new Map(); // "client:clock" -> {at, measured}
const latencies = [];
let expected = 0;
let received = 0;
let measuring = false;
let finished = false;
const disconnects = [];
const yjsErrors = {};

const editors = [];
for (let i = 0; i < n; i++) {
  const doc = new Y.Doc();
  const provider = new SocketIOProvider(url, room, doc, { auth: { token: tokens[i % tokens.length] },
    disableBc: true }, { reconnectionDelay: 500, reconnectionDelayMax: 5000 });
  provider.awareness.setLocalStateField("user", { name: `editor ${i}`, color: "#336699" });
  provider.socket.on("connect_error", (err) => finish({ error: `editor ${i} refused: ${err.message}` }));
  // Refusals are counted, not fatal: the next sync-step-1 exchange repairs what they dropped; convergence is checked.
  provider.socket.on("yjs-error", (err) => {
    const code = (err && err.code) || "?";
    yjsErrors[code] = (yjsErrors[code] || 0) + 1;
  });
  // Reconnects as the web page does (a server may close an editor's transport when it falls behind: the two
  // sync-step-1 exchanges then carry everything over); each drop is reported with the result.
  provider.socket.on("disconnect", (reason) => !finished && disconnects.push(`editor ${i}: ${reason}`));
  doc.on("update", (update, origin) => {
    if (origin !== provider) return;
    const now = performance.now();
    const { from, to } = Y.parseUpdateMeta(update);
    for (const [client, start] of from) {
      if (client === doc.clientID) continue;
      for (let clock = start; clock < to.get(client); clock++) {
        const entry = sent.get(`${client}:${clock}`);
        if (!entry) continue;
        received += 1;
        if (entry.measured) latencies.push(now - entry.at);
      }
    }
  });
  editors.push({ doc, provider, text: doc.getText("content") });
}

const opened = performance.now();
await Promise.all(editors.map(({ provider }) => new Promise((resolve) => {
  if (provider.synced) resolve();
  else provider.on("sync", (synced) => synced && resolve());
})));
// "synced" means the server's state vector was answered; the document itself is the ack of our own sync-step-1,
// which may come later: when the expected text length is known, wait for it too.
const { expectLength = 0 } = config;
await Promise.all(editors.map(({ doc, text }) => new Promise((resolve) => {
  const check = () => text.length >= expectLength && (doc.off("update", check), resolve());
  doc.on("update", check);
  check();
})));
const syncMs = +(performance.now() - opened).toFixed(1);
if (keystrokes === 0) finish({ editors: n, sync_ms: syncMs, length: editors[0].text.length });

const started = performance.now();
for (let k = 0; k < warmup + keystrokes; k++) {
  measuring = k >= warmup;
  const { doc, provider, text } = editors[k % n];
  const clock = Y.getState(doc.store, doc.clientID);
  const at = Math.floor(Math.random() * (text.length + 1));
  sent.set(`${doc.clientID}:${clock}`, { at: performance.now(), measured: measuring });
  expected += n - 1;
  text.insert(at, String.fromCharCode(97 + (k % 26)));
  if (awareness) provider.awareness.setLocalStateField("cursor", { anchor: at + 1, head: at + 1 });
  await new Promise((resolve) => setTimeout(resolve, intervalMs));
}
const typed = (performance.now() - started) / 1000;
const deadline = performance.now() + Math.max(5000, timeoutMs - (performance.now() - started) - 5000);
while (received < expected && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));

const texts = new Set(editors.map(({ text }) => text.toString()));
latencies.sort((a, b) => a - b);
const pct = (p) => latencies.length ? +latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]
  .toFixed(2) : null;
finish({ editors: n, keystrokes, samples: latencies.length, expected: keystrokes * (n - 1), delivered: received,
  converged: texts.size === 1, length: editors[0].text.length, p50_ms: pct(0.5), p99_ms: pct(0.99),
  max_ms: latencies.length ? +latencies.at(-1).toFixed(2) : null,
  mean_ms: latencies.length ? +(latencies.reduce((a, b) => a + b, 0) / latencies.length).toFixed(2) : null,
  seconds: +typed.toFixed(2), sync_ms: syncMs });

function finish(result) {
  if (finished) return;
  finished = true;
  clearTimeout(guard);
  if (disconnects.length) result.disconnects = disconnects;
  if (Object.keys(yjsErrors).length) result.yjs_errors = yjsErrors;
  console.log(JSON.stringify(result));
  for (const { provider } of editors) provider.destroy();
  process.exit(result.error ? 1 : 0);
}
