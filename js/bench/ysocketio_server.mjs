// The co-editing reference peer: the npm y-socket.io Node server (YSocketIO from y-socket.io/dist/server) on a
// plain socket.io server, no authentication and no persistence: what the same protocol costs on Node on this
// machine. bench/coedit.py measures our server and this one with the same Node clients (js/bench/coedit_load.mjs).
// usage: node ysocketio_server.mjs <port>    prints {"listening": port} once it accepts connections.

import { createServer } from "node:http";
import { Server } from "socket.io";
import { YSocketIO } from "y-socket.io/dist/server";

const port = Number(process.argv[2] || 3000);
const http = createServer((_req, res) => res.writeHead(404).end());
const io = new Server(http, { cors: { origin: "*" } });
new YSocketIO(io, { gcEnabled: true }).initialize();
http.listen(port, "127.0.0.1", () => console.log(JSON.stringify({ listening: port })));
