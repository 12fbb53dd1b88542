// Two people in two browser contexts of headless Chromium (Debian's /usr/bin/chromium driven by playwright-core)
// collaborate through the web client at BASE_URL/app: sign up and log in through the page, create a project,
// invite, both see each other online, edits and cursors travel live both ways, a save conflict is shown and
// resolved, an export job runs to success and its archive downloads.
//
// Run by tests/test_browser.py, which starts the server and checks the result. Environment:
//   BASE_URL        the server, e.g. http://127.0.0.1:8123
//   BOB_EMAIL, BOB_PASSWORD   an existing account (Alice signs up through the page)
//   ARTIFACTS       folder for screenshots and the downloaded archive
//   CONTROL=stdin   also restart the server midway: the script prints "CONTROL stop-server" / "CONTROL start-server"
//                   and waits for the driver to answer "ok" on stdin (tests/test_browser.py does)
// Prints one JSON line (the facts the pytest side checks) as its last output line; exits 1 on any failure.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { chromium } from "playwright-core";

const BASE = process.env.BASE_URL;
const ARTIFACTS = process.env.ARTIFACTS;
const SHOTS = path.join(ARTIFACTS, "screenshots");
const STEP_TIMEOUT = 10_000;
const TOTAL_TIMEOUT = 100_000;
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const VIEWPORT = { width: 1240, height: 860 };

mkdirSync(SHOTS, { recursive: true });
const result = { statuses: [], steps: [] };
const problems = []; // uncaught page errors: a page that throws is a failure even if the steps pass
let browser;

const started = Date.now();

function step(name) {
  const at = ((Date.now() - started) / 1000).toFixed(1);
  result.steps.push(`${at}s ${name}`);
  console.error(`[e2e] ${at}s ${name}`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

async function newUser(name) {
  const context = await browser.newContext({ viewport: VIEWPORT, acceptDownloads: true, baseURL: BASE });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  page.on("pageerror", (err) => problems.push(`${name}: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") console.error(`[${name} console] ${msg.text()}`);
  });
  await page.goto("/app");
  return { name, context, page };
}

const editor = (page) => page.getByLabel("File content");
const online = (page) => page.getByRole("list", { name: "Online users" });

const control = process.env.CONTROL === "stdin"
  ? readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]() : null;

/** Ask the driver to do something to the server; resolves once it answered "ok". */
async function ask(command) {
  console.log(`CONTROL ${command}`);
  const { value, done } = await control.next();
  if (done || value.trim() !== "ok") throw new Error(`driver did not ${command}: ${done ? "stdin closed" : value}`);
}

async function waitForText(page, expected) {
  await page.waitForFunction((text) => document.querySelector("#editor").value === text, expected);
}

async function main() {
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: FLAGS, headless: true });
  result.browser = browser.version();
  const alice = await newUser("alice");
  const bob = await newUser("bob");
  const aliceEmail = `alice-${Date.now()}@example.com`;

  step("alice signs up through the page");
  const signup = alice.page.getByRole("form", { name: "Sign up" });
  await signup.getByLabel("Name").fill("Alice");
  await signup.getByLabel("Email").fill(aliceEmail);
  await signup.getByLabel("Password").fill("alice-password-123");
  await signup.getByRole("button", { name: "Sign up" }).click();
  await alice.page.locator("#connection[data-state=connected]").waitFor();

  step("bob's wrong password shows the server's message, then he logs in");
  const login = bob.page.getByRole("form", { name: "Log in" });
  await login.getByLabel("Email").fill(process.env.BOB_EMAIL);
  await login.getByLabel("Password").fill("not-the-password");
  await login.getByRole("button", { name: "Log in" }).click();
  const loginError = login.locator(".form-error");
  await loginError.waitFor();
  result.loginError = await loginError.textContent();
  await login.getByLabel("Password").fill(process.env.BOB_PASSWORD);
  await login.getByRole("button", { name: "Log in" }).click();
  await bob.page.locator("#connection[data-state=connected]").waitFor();
  result.connectionText = await bob.page.locator("#connection").textContent();

  step("alice creates a project and invites bob (after an unknown email's error)");
  const newProject = alice.page.getByRole("form", { name: "New project" });
  await newProject.getByLabel("Project name").fill("Design notes");
  await newProject.getByLabel("Description").fill("Where Alice and Bob write things down");
  await newProject.getByRole("button", { name: "Create project" }).click();
  await alice.page.getByRole("heading", { name: "Design notes" }).waitFor();
  result.projectId = Number(/#\/projects\/(\d+)/.exec(alice.page.url())[1]);
  const invite = alice.page.getByRole("form", { name: "Invite a collaborator" });
  await invite.getByLabel("Invite email").fill("nobody-here@example.com");
  await invite.getByRole("button", { name: "Invite" }).click();
  await invite.locator(".form-error").waitFor();
  result.inviteError = await invite.locator(".form-error").textContent();
  await invite.getByLabel("Invite email").fill(process.env.BOB_EMAIL);
  await invite.getByLabel("Role").selectOption("collaborator");
  await invite.getByRole("button", { name: "Invite" }).click();
  await alice.page.getByRole("list", { name: "Collaborators" }).getByText(process.env.BOB_EMAIL).waitFor();

  step("bob opens the project (it appears in his list live when MEMBERSHIP_CHANGED reaches him)");
  const link = bob.page.getByRole("link", { name: "Open project Design notes" });
  try {
    await link.waitFor({ timeout: 3000 });
    result.projectListLive = true;
  } catch {
    result.projectListLive = false;
    await bob.page.reload();
  }
  await link.click();
  await bob.page.getByRole("heading", { name: "Design notes" }).waitFor();

  step("both see each other online");
  await online(alice.page).getByText("Bob").waitFor();
  await online(bob.page).getByText("Alice").waitFor();
  result.aliceSees = await online(alice.page).locator("li").allTextContents();
  result.bobSees = await online(bob.page).locator("li").allTextContents();

  step("alice creates notes.md; it appears in bob's file list; both open it");
  const newFile = alice.page.getByRole("form", { name: "New file" });
  await newFile.getByLabel("New file path").fill("notes.md");
  await newFile.getByRole("button", { name: "Create file" }).click();
  await alice.page.locator("#file-path", { hasText: "notes.md" }).waitFor();
  await bob.page.getByRole("button", { name: "Open notes.md" }).click();
  await bob.page.locator("#file-path", { hasText: "notes.md" }).waitFor();

  step("alice's typing appears in bob's editor");
  const aliceText = "# Design notes\nAlice: the page shows who is online.\n";
  await editor(alice.page).click();
  await alice.page.keyboard.type(aliceText, { delay: 5 });
  await waitForText(bob.page, aliceText);

  step("bob's typing appears in alice's editor");
  await editor(bob.page).click();
  await bob.page.keyboard.press("Control+End");
  const bobLine = "Bob: and edits travel live.\n";
  await bob.page.keyboard.type(bobLine, { delay: 5 });
  const together = aliceText + bobLine;
  await waitForText(alice.page, together);

  step("cursor moves show as named markers on the other side");
  await editor(alice.page).click();
  await alice.page.keyboard.press("Control+Home");
  await alice.page.keyboard.press("ArrowDown");
  await alice.page.keyboard.press("End");
  // Lines and columns are 1-based: the end of line 2 is one past its last character.
  const aliceCursor = bob.page.getByRole("img",
    { name: `Alice's cursor at line 2, column ${aliceText.split("\n")[1].length + 1}` });
  await aliceCursor.waitFor();
  await editor(bob.page).click();
  await bob.page.keyboard.press("Control+End");
  await bob.page.keyboard.press("ArrowUp");
  await bob.page.keyboard.press("End");
  const bobColumn = bobLine.trimEnd().length + 1;
  await alice.page.getByRole("img", { name: `Bob's cursor at line 3, column ${bobColumn}` }).waitFor();
  result.cursorLabel = await aliceCursor.getAttribute("aria-label");
  await shot(alice.page, "03-alice-editing");
  await shot(bob.page, "03-bob-editing");

  if (control) {
    step("the server restarts: both show reconnecting, alice's edit meanwhile is saved once they are back");
    await ask("stop-server");
    for (const { page } of [alice, bob]) await page.locator("#connection[data-state=reconnecting]").waitFor();
    result.downText = (await bob.page.locator("#connection").textContent()).trim();
    await editor(alice.page).click();
    await alice.page.keyboard.press("Control+End");
    const offlineLine = "Alice: typed while the server was down.\n";
    await alice.page.keyboard.type(offlineLine);
    await alice.page.locator("#save-state", { hasText: "Not saved" }).waitFor();
    result.offlineSaveState = await alice.page.locator("#save-state").textContent();
    await shot(alice.page, "04-alice-reconnecting");
    await ask("start-server");
    for (const { page } of [alice, bob]) {
      await page.locator("#connection[data-state=connected]").waitFor({ timeout: 15_000 });
    }
    await waitForText(bob.page, together + offlineLine);
    await online(alice.page).getByText("Bob").waitFor();
    await online(bob.page).getByText("Alice").waitFor();
    result.restarted = true;
  }

  step("both type at once: one of them is told of the conflict and loads the newer version");
  await editor(alice.page).click();
  await alice.page.keyboard.press("Control+End");
  await editor(bob.page).click();
  await bob.page.keyboard.press("Control+End");
  await Promise.all([alice.page.keyboard.type("A-edit\n"), bob.page.keyboard.type("B-edit\n")]);
  const waits = [alice, bob].map((user) => user.page.locator("#conflict").waitFor().then(() => user));
  for (const wait of waits) wait.catch(() => {}); // the side that is not told of a conflict times out harmlessly
  const banner = await Promise.any(waits).catch(() => {
    throw new Error("neither side was told of the conflict");
  });
  result.conflictShownTo = banner.name;
  result.conflictText = await banner.page.locator("#conflict-text").textContent();
  await shot(banner.page, "05-conflict");
  await banner.page.getByRole("button", { name: /^Load / }).click();
  await banner.page.locator("#conflict").waitFor({ state: "hidden" });
  const other = banner === alice ? bob : alice;
  const merged = await other.page.locator("#editor").inputValue();
  await waitForText(banner.page, merged);
  result.finalText = merged;

  step("bob's session refreshes its tokens (rotation keeps the newest refresh token) and keeps working");
  result.rotated = await bob.page.evaluate(async () => {
    const session = await import("/app/static/js/session.js");
    const before = session.current();
    await session.refresh();
    const after = session.current();
    return before.refresh !== after.refresh && before.access !== after.access;
  });

  step("bob exports the project: status moves through JOB_UPDATE, then the archive downloads");
  await bob.page.getByRole("button", { name: "Export project" }).click();
  const badge = bob.page.locator("#jobs li").first().locator(".badge");
  await badge.waitFor();
  const deadline = Date.now() + 20_000;
  for (;;) {
    const status = await badge.textContent();
    if (result.statuses.at(-1) !== status) result.statuses.push(status);
    if (status === "succeeded" || status === "failed" || Date.now() > deadline) break;
    await bob.page.waitForTimeout(25);
  }
  if (result.statuses.at(-1) !== "succeeded") throw new Error(`export ended ${result.statuses.join(" → ")}`);
  // Alice sees the same job finish through her own JOB_UPDATE.
  await alice.page.locator("#jobs li .badge", { hasText: "succeeded" }).waitFor();
  const summary = bob.page.locator("#jobs li").first();
  await summary.getByText(/^1 file · /).waitFor(); // the result, read over REST once JOB_UPDATE said succeeded
  result.exportSummary = await summary.innerText();
  const downloadButton = bob.page.getByRole("button", { name: /^Download export / });
  const [download] = await Promise.all([bob.page.waitForEvent("download"), downloadButton.click()]);
  result.zipPath = path.join(ARTIFACTS, "export.zip");
  await download.saveAs(result.zipPath);
  result.zipName = download.suggestedFilename();
  result.zipMagic = readFileSync(result.zipPath).subarray(0, 4).toString("hex");
  await shot(bob.page, "06-bob-exported");

  step("a screenshot of the two of them side by side, each caret at the end of their own line");
  for (const [user, other, line] of [[alice, bob, 2], [bob, alice, 3]]) {
    await editor(user.page).click();
    await user.page.keyboard.press("Control+Home");
    for (let i = 1; i < line; i++) await user.page.keyboard.press("ArrowDown");
    await user.page.keyboard.press("End");
    await other.page.getByRole("img", { name: new RegExp(`^${user.name}'s cursor at line ${line},`, "i") }).waitFor();
  }
  for (const { page } of [alice, bob]) {
    await page.evaluate(() => {
      document.querySelector("#notice").hidden = true;
      window.scrollTo(0, 0);
    });
  }
  await sideBySide(await alice.page.screenshot(), await bob.page.screenshot());

  result.problems = problems;
  if (problems.length) throw new Error(`errors in the page: ${problems.join("; ")}`);
}

async function sideBySide(left, right) {
  const page = await browser.newPage({ viewport: { width: VIEWPORT.width * 2 + 24, height: VIEWPORT.height + 56 } });
  const img = (png, who) => `<figure><figcaption>${who}</figcaption>
    <img src="data:image/png;base64,${png.toString("base64")}"></figure>`;
  await page.setContent(`<style>body{margin:0;display:flex;gap:8px;padding:8px;background:#2b3340;font:14px sans-serif}
    figure{margin:0}figcaption{color:#fff;padding:4px 2px 8px}img{display:block;border-radius:4px}</style>
    ${img(left, "Alice")}${img(right, "Bob")}`);
  await page.screenshot({ path: path.join(SHOTS, "two-users.png") });
  await page.close();
}

const guard = setTimeout(() => {
  console.error(`[e2e] gave up after ${TOTAL_TIMEOUT} ms`);
  process.exit(1);
}, TOTAL_TIMEOUT);

try {
  await main();
  result.ok = true;
} catch (err) {
  result.ok = false;
  result.error = String(err && err.stack ? err.stack : err);
  console.error(`[e2e] failed at "${result.steps.at(-1)}" after ${(Date.now() - started) / 1000}s: ${result.error}`);
  for (const ctx of browser ? browser.contexts() : []) {
    for (const [i, page] of ctx.pages().entries()) {
      await page.screenshot({ path: path.join(SHOTS, `failure-${browser.contexts().indexOf(ctx)}-${i}.png`) })
        .catch(() => {});
      const snapshot = await page.locator("main").ariaSnapshot().catch((e) => String(e));
      console.error(`[e2e] page ${browser.contexts().indexOf(ctx)}-${i} at failure:\n${snapshot}`);
    }
  }
} finally {
  clearTimeout(guard);
  writeFileSync(path.join(ARTIFACTS, "e2e-result.json"), JSON.stringify(result, null, 2));
  console.log(JSON.stringify(result));
  if (browser) await browser.close().catch(() => {});
}
process.exit(result.ok ? 0 : 1);
