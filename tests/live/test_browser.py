"""The web client in a real browser: two users in two headless Chromium contexts against one live gunicorn process
and a job worker (js/e2e/two_users.mjs drives the page; this test starts the servers and checks what it saw). Files are
co-edited (CodeMirror on Yjs documents): edits merge, carets come from awareness, offline edits sync after a restart.

Needs Debian's /usr/bin/chromium, node and js/node_modules/playwright-core. Missing ones skip the test on a developer's
machine but FAIL it in CI (CI=true), where .ci/run installs chromium: the browser test must never vanish silently.
Screenshots land in tests/artifacts/screenshots/ (two-users.png is the one the README shows, copied to docs/).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile

import pytest

from browser_support import ARTIFACTS, drive, require_browser
from processes import ROOT, start, start_web

SCRIPT = ROOT / "js" / "e2e" / "two_users.mjs"
WORKER = [sys.executable, "-m", "workspace.jobs.worker"]


@pytest.mark.live
def test_two_users_collaborate_live_in_the_browser(live_env, processes, make_user):
    require_browser()
    web, base = start_web(live_env)
    processes.append(web)
    worker = start(WORKER, {**live_env, "JOB_BACKOFF_BASE_SECONDS": "1"}, "worker")
    processes.append(worker)
    bob = make_user(name="Bob")
    shutil.rmtree(ARTIFACTS / "screenshots", ignore_errors=True)
    for old in (ARTIFACTS / "export.zip", ARTIFACTS / "e2e-result.json"):
        old.unlink(missing_ok=True)

    env = {**os.environ, "BASE_URL": base, "BOB_EMAIL": bob.email, "BOB_PASSWORD": bob.password,
           "ARTIFACTS": str(ARTIFACTS), "CONTROL": "stdin"}
    servers = [web]

    def restart(command: str) -> None:
        """The script's requests to take the server down and bring it back on the same address."""
        if command == "stop-server":
            servers[-1].kill()  # a crash: no goodbye to the clients (a graceful stop waits out open connections)
        elif command == "start-server":
            port = int(base.rsplit(":", 1)[1])
            proc, _ = start_web(live_env, port=port)
            processes.append(proc)
            servers.append(proc)
        else:
            raise AssertionError(f"unknown control request {command!r}")

    code, lines, errors = drive(SCRIPT, env, restart)
    assert code == 0 and lines, (
        f"browser run failed (screenshots in {ARTIFACTS / 'screenshots'}):\n{errors[-6000:]}\n"
        f"--- web ---\n{servers[-1].output()[-3000:]}\n--- worker ---\n{worker.output()[-2000:]}")
    result = json.loads(lines[-1])

    assert result["ok"] and result["problems"] == []
    assert result["connectionText"].strip() == "Connected"
    assert result["restarted"] and result["downText"] == "Reconnecting…"
    assert result["offlineSyncState"].startswith("Offline")
    assert len(servers) == 2
    # Errors show the server's own sentence, never a generic one.
    assert result["loginError"] and "server answered" not in result["loginError"]
    assert result["inviteError"] and "server answered" not in result["inviteError"]
    assert any(s.startswith("Bob") for s in result["aliceSees"])
    assert any(s.startswith("Alice") for s in result["bobSees"])
    assert result["aliceSeesCarets"] == ["Bob"] and result["bobSeesCarets"] == ["Alice"]  # from Yjs awareness
    assert result["rotated"] is True
    assert result["statuses"][-1] == "succeeded"
    assert "1 file · " in result["exportSummary"]

    # The downloaded archive is a real zip holding the file as the two of them left it.
    assert result["zipMagic"] == "504b0304"
    with zipfile.ZipFile(result["zipPath"]) as archive:
        assert archive.testzip() is None
        notes = [name for name in archive.namelist() if name.endswith("notes.md")]
        assert len(notes) == 1, archive.namelist()
        assert archive.read(notes[0]).decode() == result["finalText"]
    assert "A-edit" in result["finalText"] and "B-edit" in result["finalText"]  # merged: no edit lost
    assert (ARTIFACTS / "screenshots" / "two-users.png").stat().st_size > 10_000
