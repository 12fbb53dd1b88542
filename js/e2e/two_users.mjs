// Two people in two browser contexts of headless Chromium (Debian's /usr/bin/chromium driven by playwright-core)
// collaborate through the web client at BASE_URL/app: sign up and log in through the page, create a project,
// invite, both see each other online, edits and carets travel live both ways (co-editing: CodeMirror on a Yjs
// document), edits typed while the server is down reach the other side once it is back, both type at once and end
// with the same text, an export job runs to success and its archive downloads.
//
// Run by tests/live/test_browser.py, which starts the server and checks the result. Environment:
//   BASE_URL        the server, e.g. http://127.0.0.1:8123
//   BOB_EMAIL, BOB_PASSWORD   an existing account (Alice signs up through the page)
//   ARTIFACTS       folder for screenshots and the downloaded archive
//   CONTROL=stdin   also restart the server midway: the script prints "CONTROL stop-server" / "CONTROL start-server"
//                   and waits for the driver to answer "ok" on stdin (tests/live/test_browser.py does)
// Prints one JSON line (the facts the pytest side checks) as its last output line; exits 1 on any failure.

import { readFileSync } from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { editor, editorText, remoteCaret, Run, waitForEditorText } from "./harness.mjs";

const BASE = process.env.BASE_URL;
const ARTIFACTS = process.env.ARTIFACTS;
const run = new Run({ name: "e2e", artifacts: ARTIFACTS, totalTimeout: 100_000 });
const result = Object.assign(run.result, { statuses: [] });
const step = (name) => run.step(name);
const shot = (page, name) => run.shot(page, name);
const newUser = (name) => run.newUser(name, BASE);
const online = (page) => page.getByRole("list", { name: "Online users" });
const waitForText = (page, expected) => waitForEditorText(page, expected);

const control = process.env.CONTROL === "stdin"
  ? readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]() : null;

/** Ask the driver to do something to the server; resolves once it answered "ok". */
async function ask(command) {
  console.log(`CONTROL ${command}`);
  const { value, done } = await control.next();
  if (done || value.trim() !== "ok") throw new Error(`driver did not ${command}: ${done ? "stdin closed" : value}`);
}

async function main() {
  const alice = await newUser("Alice");
  const bob = await newUser("Bob");
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

  step("carets show on the other side with the name (Yjs awareness)");
  await editor(alice.page).click();
  await alice.page.keyboard.press("Control+Home");
  await alice.page.keyboard.press("ArrowDown");
  await alice.page.keyboard.press("End");
  await remoteCaret(bob.page, "Alice").waitFor();
  await editor(bob.page).click();
  await bob.page.keyboard.press("Control+End");
  await bob.page.keyboard.press("ArrowUp");
  await bob.page.keyboard.press("End");
  await remoteCaret(alice.page, "Bob").waitFor();
  result.aliceSeesCarets = await alice.page.locator("#editor .cm-ySelectionInfo").allTextContents();
  result.bobSeesCarets = await bob.page.locator("#editor .cm-ySelectionInfo").allTextContents();
  await shot(alice.page, "03-alice-editing");
  await shot(bob.page, "03-bob-editing");

  if (control) {
    step("the server restarts: both show reconnecting, alice's edit meanwhile reaches bob once they are back");
    await ask("stop-server");
    for (const { page } of [alice, bob]) await page.locator("#connection[data-state=reconnecting]").waitFor();
    result.downText = (await bob.page.locator("#connection").textContent()).trim();
    await editor(alice.page).click();
    await alice.page.keyboard.press("Control+End");
    const offlineLine = "Alice: typed while the server was down.\n";
    await alice.page.keyboard.type(offlineLine);
    await alice.page.locator("#sync-state", { hasText: "Offline" }).waitFor();
    result.offlineSyncState = await alice.page.locator("#sync-state").textContent();
    await shot(alice.page, "04-alice-reconnecting");
    await ask("start-server");
    for (const { page } of [alice, bob]) {
      await page.locator("#connection[data-state=connected]").waitFor({ timeout: 15_000 });
    }
    // The document's own connection retries on its own backoff (up to 5 s apart): wait until both are live again.
    for (const { page } of [alice, bob]) {
      await page.locator("#sync-state", { hasText: /^Live$/ }).waitFor({ timeout: 20_000 });
    }
    await waitForText(bob.page, together + offlineLine);
    await online(alice.page).getByText("Bob").waitFor();
    await online(bob.page).getByText("Alice").waitFor();
    result.restarted = true;
  }

  step("both type at once at the end: both end with the same text, holding both edits");
  await editor(alice.page).click();
  await alice.page.keyboard.press("Control+End");
  await editor(bob.page).click();
  await bob.page.keyboard.press("Control+End");
  await Promise.all([alice.page.keyboard.type("A-edit\n"), bob.page.keyboard.type("B-edit\n")]);
  const merged = await converge(alice.page, bob.page, (text) => text.includes("A-edit") && text.includes("B-edit"));
  await shot(alice.page, "05-both-typed");
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
    await remoteCaret(other.page, user.name).waitFor();
  }
  for (const { page } of [alice, bob]) {
    await page.evaluate(() => {
      document.querySelector("#notice").hidden = true;
      window.scrollTo(0, 0);
    });
  }
  await run.sideBySide([[await alice.page.screenshot(), "Alice"], [await bob.page.screenshot(), "Bob"]],
    "two-users.png");
}

/** Wait until both pages show the same text and `accept(text)`; returns it. */
async function converge(one, two, accept, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const [a, b] = [await editorText(one), await editorText(two)];
    if (a === b && accept(a)) return a;
    if (Date.now() > deadline) throw new Error(`the screens did not converge: ${JSON.stringify([a, b])}`);
    await one.waitForTimeout(25);
  }
}

await run.execute(main);
