// What the browser tests share: Debian's /usr/bin/chromium through playwright-core, one browser context per
// person, named steps with timings, screenshots, reading the co-editor's text and carets, a side-by-side picture,
// and one JSON result line printed last (the pytest side checks it). A run is bounded by its total timeout.

import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
export const VIEWPORT = { width: 1240, height: 860 };
const STEP_TIMEOUT = 10_000;

/** The co-editor's text area (CodeMirror's content element carries the label). */
export const editor = (page) => page.getByLabel("File content");

/** The document's text as this page shows it: CodeMirror's lines (in the editor's shadow root), without the remote
 * carets' name widgets. (Playwright's locators pierce open shadow roots by themselves.) */
export function editorText(page) {
  return page.evaluate(() => {
    const host = document.querySelector("#editor");
    const content = host && host.shadowRoot && host.shadowRoot.querySelector(".cm-content");
    if (!content) return null;
    return [...content.querySelectorAll(".cm-line")].map((line) => {
      const copy = line.cloneNode(true);
      for (const widget of copy.querySelectorAll(".cm-ySelectionCaret")) widget.remove();
      return copy.textContent.replace(/\u2060/g, "");
    }).join("\n");
  });
}

export async function waitForEditorText(page, expected, timeout = STEP_TIMEOUT) {
  const deadline = Date.now() + timeout;
  let text;
  while (Date.now() < deadline) {
    text = await editorText(page);
    if (text === expected) return text;
    await page.waitForTimeout(25);
  }
  throw new Error(`editor text is ${JSON.stringify(text)}, expected ${JSON.stringify(expected)}`);
}

/** The remote caret of `name` in this page's editor (y-codemirror.next draws it from awareness). */
export const remoteCaret = (page, name) => page.locator("#editor .cm-ySelectionCaret", {
  has: page.locator(".cm-ySelectionInfo", { hasText: new RegExp(`^${name}$`) }) });

export class Run {
  constructor({ name, artifacts, totalTimeout }) {
    this.name = name; // the result is also written to ARTIFACTS/<name>-result.json
    this.artifacts = artifacts;
    this.shots = path.join(artifacts, "screenshots");
    this.totalTimeout = totalTimeout;
    this.result = { steps: [] };
    this.problems = []; // uncaught page errors: a page that throws is a failure even if the steps pass
    this.started = Date.now();
    this.browser = null;
    mkdirSync(this.shots, { recursive: true });
  }

  step(name) {
    const at = ((Date.now() - this.started) / 1000).toFixed(1);
    this.result.steps.push(`${at}s ${name}`);
    console.error(`[e2e] ${at}s ${name}`);
  }

  async shot(page, name) {
    await page.screenshot({ path: path.join(this.shots, `${name}.png`) });
  }

  async newUser(name, baseURL) {
    if (!this.browser) {
      this.browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: FLAGS, headless: true });
      this.result.browser = this.browser.version();
    }
    const context = await this.browser.newContext({ viewport: VIEWPORT, acceptDownloads: true, baseURL });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT);
    page.on("pageerror", (err) => this.problems.push(`${name}: ${err.message}`));
    page.on("console", (msg) => {
      if (msg.type() !== "error") return;
      console.error(`[${name} console] ${msg.text()}`);
      // The page must work under its Content-Security-Policy: a blocked script or stylesheet is a failure. Style
      // attributes (Chromium: "Applying inline style violates ...") are the exception: y-codemirror.next colours
      // carets with them, and js/editor/ re-applies each through the CSSOM (the co-editing test checks the colours).
      const text = msg.text();
      if (text.includes("Content Security Policy") && !text.startsWith("Applying inline style")) {
        this.problems.push(`${name}: ${text}`);
      }
    });
    await page.goto("/app");
    return { name, context, page };
  }

  /** Two screenshots next to each other with captions, saved as `file` under the screenshots folder. */
  async sideBySide(shots, file) {
    const page = await this.browser.newPage({
      viewport: { width: VIEWPORT.width * shots.length + 8 * (shots.length + 1), height: VIEWPORT.height + 56 } });
    const figures = shots.map(([png, who]) => `<figure><figcaption>${who}</figcaption>
      <img src="data:image/png;base64,${png.toString("base64")}"></figure>`).join("");
    await page.setContent(`<style>body{margin:0;display:flex;gap:8px;padding:8px;background:#2b3340;
      font:14px sans-serif}figure{margin:0}figcaption{color:#fff;padding:4px 2px 8px}
      img{display:block;border-radius:4px}</style>${figures}`);
    const target = path.join(this.shots, file);
    await page.screenshot({ path: target });
    await page.close();
    return target;
  }

  /** Run `main(run)`; on failure, screenshots and an accessibility snapshot of every page. Exits the process. */
  async execute(main) {
    const guard = setTimeout(() => {
      console.error(`[e2e] gave up after ${this.totalTimeout} ms`);
      process.exit(1);
    }, this.totalTimeout);
    const result = this.result;
    try {
      await main(this);
      result.problems = this.problems;
      if (this.problems.length) throw new Error(`errors in the page: ${this.problems.join("; ")}`);
      result.ok = true;
    } catch (err) {
      result.ok = false;
      result.error = String(err && err.stack ? err.stack : err);
      console.error(`[e2e] failed at "${result.steps.at(-1)}" after ${(Date.now() - this.started) / 1000}s: `
        + result.error);
      for (const [c, ctx] of (this.browser ? this.browser.contexts() : []).entries()) {
        for (const [i, page] of ctx.pages().entries()) {
          await page.screenshot({ path: path.join(this.shots, `failure-${c}-${i}.png`) }).catch(() => {});
          const snapshot = await page.locator("main").ariaSnapshot().catch((e) => String(e));
          console.error(`[e2e] page ${c}-${i} at failure:\n${snapshot}`);
        }
      }
    } finally {
      clearTimeout(guard);
      result.problems = this.problems;
      writeFileSync(path.join(this.artifacts, `${this.name}-result.json`), JSON.stringify(result, null, 2));
      console.log(JSON.stringify(result));
      if (this.browser) await this.browser.close().catch(() => {});
    }
    process.exit(result.ok ? 0 : 1);
  }
}

/** Log in through the page's form and wait for the live connection. */
export async function logIn(page, email, password) {
  const login = page.getByRole("form", { name: "Log in" });
  await login.getByLabel("Email").fill(email);
  await login.getByLabel("Password").fill(password);
  await login.getByRole("button", { name: "Log in" }).click();
  await page.locator("#connection[data-state=connected]").waitFor();
}
