// Live co-editing in the browser: Alice and Bob, two headless Chromium contexts on the web client at BASE_URL/app,
// open the same file and type into the SAME LINE at the same time. Both must end with the same merged text (every
// character each of them typed, in each one's order) and see the other's caret with the other's name (drawn by
// y-codemirror.next from Yjs awareness). Saves ARTIFACTS/screenshots/coedit.png: the two screens side by side.
//
// Run by tests/live/test_browser_coedit.py, which starts the server, creates both accounts, the project (Bob a
// collaborator) and the file. Environment: BASE_URL, ARTIFACTS, PROJECT_ID, FILE_PATH, FIRST_LINE (the file's
// first line as created), ALICE_EMAIL, BOB_EMAIL, PASSWORD (both accounts).
// Prints one JSON line (the facts the pytest side checks) as its last output line; exits 1 on any failure.

import { editor, editorText, logIn, remoteCaret, Run, waitForEditorText } from "./harness.mjs";

const env = process.env;
const ALICE_TYPES = "alice-types-here";
const BOB_TYPES = "BOB-TYPES-THERE";

/** Does `text` hold the characters of `typed` in order (others' characters may sit between them)? */
function holdsInOrder(text, typed) {
  let at = 0;
  for (const ch of typed) {
    at = text.indexOf(ch, at);
    if (at < 0) return false;
    at += 1;
  }
  return true;
}

async function main(run) {
  const result = run.result;
  const alice = await run.newUser("Alice", env.BASE_URL);
  const bob = await run.newUser("Bob", env.BASE_URL);

  run.step("both log in through the page and open the same file");
  for (const [user, email] of [[alice, env.ALICE_EMAIL], [bob, env.BOB_EMAIL]]) {
    await logIn(user.page, email, env.PASSWORD);
    await user.page.goto(`/app#/projects/${env.PROJECT_ID}`);
    await user.page.getByRole("button", { name: `Open ${env.FILE_PATH}` }).click();
    await user.page.locator("#file-path", { hasText: env.FILE_PATH }).waitFor();
    await user.page.locator("#sync-state", { hasText: /^Live$/ }).waitFor();
    await waitForEditorText(user.page, `${env.FIRST_LINE}\n`);
  }

  run.step("each puts the caret at the end of line 1 and sees the other's caret there, named");
  for (const { page } of [alice, bob]) {
    await editor(page).click();
    await page.keyboard.press("Control+Home");
    await page.keyboard.press("End");
  }
  await remoteCaret(alice.page, "Bob").waitFor();
  await remoteCaret(bob.page, "Alice").waitFor();

  run.step("both type into line 1 at the same time");
  await Promise.all([
    alice.page.keyboard.type(ALICE_TYPES, { delay: 35 }),
    bob.page.keyboard.type(BOB_TYPES, { delay: 35 }),
  ]);

  run.step("both end with the same merged text");
  const expectedLength = env.FIRST_LINE.length + ALICE_TYPES.length + BOB_TYPES.length + 1;
  const deadline = Date.now() + 10_000;
  let texts = [];
  for (;;) {
    texts = [await editorText(alice.page), await editorText(bob.page)];
    if (texts[0] === texts[1] && texts[0].length === expectedLength) break;
    if (Date.now() > deadline) throw new Error(`the screens did not converge: ${JSON.stringify(texts)}`);
    await alice.page.waitForTimeout(25);
  }
  const merged = texts[0];
  const line = merged.split("\n")[0];
  result.aliceText = texts[0];
  result.bobText = texts[1];
  result.mergedLine = line;
  result.lineHoldsBoth = line.startsWith(env.FIRST_LINE) && holdsInOrder(line, ALICE_TYPES)
    && holdsInOrder(line, BOB_TYPES);
  // Interleaved typing at one spot is expected to keep each person's run of characters in order, not contiguous.
  result.interleaved = !line.includes(ALICE_TYPES) || !line.includes(BOB_TYPES);

  run.step("each sees the other's caret, with the other's name, after the typing");
  await remoteCaret(alice.page, "Bob").waitFor();
  await remoteCaret(bob.page, "Alice").waitFor();
  result.aliceSeesCarets = await alice.page.locator("#editor .cm-ySelectionInfo").allTextContents();
  result.bobSeesCarets = await bob.page.locator("#editor .cm-ySelectionInfo").allTextContents();
  result.aliceCaretColour = await remoteCaret(bob.page, "Alice").evaluate((el) => getComputedStyle(el).borderLeftColor);
  result.bobCaretColour = await remoteCaret(alice.page, "Bob").evaluate((el) => getComputedStyle(el).borderLeftColor);

  run.step("REST reads what they typed");
  const token = await alice.page.evaluate(async () => (await import("/app/static/js/session.js")).accessToken());
  result.restContent = await alice.page.evaluate(async ({ id, path, bearer }) => {
    const response = await fetch(`/api/v1/projects/${id}/files/${path}`, { headers: { Authorization: `Bearer ${bearer}` } });
    return (await response.json()).content;
  }, { id: env.PROJECT_ID, path: env.FILE_PATH, bearer: token });

  run.step("a picture of the two screens side by side");
  for (const { page } of [alice, bob]) {
    await page.evaluate(() => {
      document.querySelector("#notice").hidden = true;
      window.scrollTo(0, 0);
    });
  }
  result.screenshot = await run.sideBySide(
    [[await alice.page.screenshot(), "Alice"], [await bob.page.screenshot(), "Bob"]], "coedit.png");
}

await new Run({ name: "coedit", artifacts: env.ARTIFACTS, totalTimeout: 90_000 }).execute(main);
