// Bundle js/editor/ (CodeMirror 6 + yjs + y-codemirror.next + y-socket.io) into one minified ES module for the
// page: workspace/web/static/dist/editor.js. Run `make bundle` (= `npm --prefix js run build`).
//
// The banner names the command and a sha256 of the sources, so a test can tell a stale committed bundle without
// Node; tests/unit/test_editor_bundle.py also rebuilds into a temporary folder (`node js/editor/build.mjs DIR`)
// and compares bytes, which catches a changed dependency too. The output is deterministic for that reason.

import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..", "..");
const OUT_DIR = process.argv[2] ? path.resolve(process.argv[2]) : path.join(ROOT, "workspace/web/static/dist");

/** sha256 over the sources (every file in js/editor/, by name then content), as the banner records it. */
export function sourcesHash() {
  const hash = createHash("sha256");
  for (const name of readdirSync(HERE).filter((n) => n.endsWith(".js") || n.endsWith(".mjs")).sort()) {
    hash.update(`${name}\0`).update(readFileSync(path.join(HERE, name))).update("\0");
  }
  return hash.digest("hex");
}

const banner = `/* Workspace co-editor bundle: CodeMirror 6, yjs, y-codemirror.next, y-socket.io (versions pinned in `
  + `js/package.json; licenses in node_modules). Generated, do not edit: rebuild with \`make bundle\` `
  + `(npm --prefix js run build) from js/editor/. sources-sha256: ${sourcesHash()} */`;

await build({
  entryPoints: [path.join(HERE, "index.js")],
  outfile: path.join(OUT_DIR, "editor.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2020",
  minify: true,
  legalComments: "none",
  banner: { js: banner },
  logLevel: "warning",
});
