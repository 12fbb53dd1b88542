"""What the browser tests share: the check that Chromium, node and playwright-core are there (skip on a developer's
machine, FAIL in CI, where .ci/run installs chromium: a browser test must never vanish silently), and running a
js/e2e/ script with its CONTROL requests answered."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from processes import ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"


def require_browser() -> None:
    needs = {"/usr/bin/chromium": CHROMIUM.exists(), "node": shutil.which("node") is not None,
             "js/node_modules/playwright-core": (ROOT / "js" / "node_modules" / "playwright-core").is_dir()}
    missing = [name for name, present in needs.items() if not present]
    if not missing:
        return
    message = f"the browser test needs {', '.join(missing)} (apt-get install chromium; npm install)"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def drive(script: Path, env: dict[str, str], control=None) -> tuple[int, list[str], str]:
    """Run the js/e2e `script` under node; "CONTROL <request>" lines on its stdout are handed to `control`, then
    answered "ok". Returns its exit code, its other stdout lines and its stderr."""
    with tempfile.TemporaryFile(mode="w+") as stderr:
        proc = subprocess.Popen(["node", str(script)], cwd=ROOT, env=env, text=True, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=stderr)
        lines = []
        try:
            # Bounded: the script gives up by itself after its TOTAL_TIMEOUT, closing stdout.
            for line in proc.stdout:
                if line.startswith("CONTROL ") and control is not None:
                    control(line.split(" ", 1)[1].strip())
                    proc.stdin.write("ok\n")
                    proc.stdin.flush()
                elif line.strip():
                    lines.append(line)
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stderr.seek(0)
        return code, lines, stderr.read()
