"""Live co-editing in a real browser (issue 11): two Chromium users type into the same line of one file at once,
both end with the same merged text, and each sees the other's caret with the other's name (js/e2e/coedit.mjs
drives the two pages; this test starts the server, creates the accounts, project and file, and checks what the
script saw). The side-by-side screenshot lands in tests/artifacts/screenshots/coedit.png (docs/screenshots/ keeps
a copy for the docs).
"""

from __future__ import annotations

import json
import os

import pytest
import requests

from browser_support import ARTIFACTS, drive, require_browser
from processes import ROOT, start_web

SCRIPT = ROOT / "js" / "e2e" / "coedit.mjs"
FIRST_LINE = "Shared line:"
FILE_PATH = "notes.md"


@pytest.mark.live
def test_two_browsers_type_into_one_line_and_converge_with_each_others_carets(live_env, processes, make_user):
    require_browser()
    web, base = start_web(live_env)
    processes.append(web)
    alice = make_user(name="Alice")
    bob = make_user(name="Bob", password=alice.password)
    api = f"{base}/api/v1"
    project = requests.post(f"{api}/projects/", json={"name": "Co-editing"}, headers=alice.headers, timeout=10)
    assert project.status_code == 201, project.text
    project_id = project.json()["id"]
    invite = requests.post(f"{api}/projects/{project_id}/collaborators", json={"email": bob.email,
                           "role": "collaborator"}, headers=alice.headers, timeout=10)
    assert invite.status_code in (200, 201), invite.text
    created = requests.put(f"{api}/projects/{project_id}/files/{FILE_PATH}", json={"content": FIRST_LINE + "\n"},
                           headers=alice.headers, timeout=10)
    assert created.status_code in (200, 201), created.text
    (ARTIFACTS / "screenshots" / "coedit.png").unlink(missing_ok=True)

    env = {**os.environ, "BASE_URL": base, "ARTIFACTS": str(ARTIFACTS), "PROJECT_ID": str(project_id),
           "FILE_PATH": FILE_PATH, "FIRST_LINE": FIRST_LINE, "ALICE_EMAIL": alice.email, "BOB_EMAIL": bob.email,
           "PASSWORD": alice.password}
    code, lines, errors = drive(SCRIPT, env)
    assert code == 0 and lines, (
        f"browser run failed (screenshots in {ARTIFACTS / 'screenshots'}):\n{errors[-6000:]}\n"
        f"--- web ---\n{web.output()[-3000:]}")
    result = json.loads(lines[-1])

    assert result["ok"] and result["problems"] == []
    # Same text on both screens, every character each typed kept in that person's order, all on line 1.
    assert result["aliceText"] == result["bobText"]
    assert result["lineHoldsBoth"], result["mergedLine"]
    assert result["aliceText"].count("\n") == 1
    # Each sees exactly the other's caret, named, in the other's colour.
    assert result["aliceSeesCarets"] == ["Bob"]
    assert result["bobSeesCarets"] == ["Alice"]
    assert result["aliceCaretColour"] != result["bobCaretColour"]
    # The server holds what the screens show.
    assert result["restContent"] == result["aliceText"]
    assert (ARTIFACTS / "screenshots" / "coedit.png").stat().st_size > 10_000
