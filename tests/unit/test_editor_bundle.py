"""The committed co-editor bundle (workspace/web/static/dist/editor.js) is what its sources build: a stale bundle
would ship an editor that is not the code under review.

Two checks: the sha256 of js/editor/ recorded in the bundle's banner (no Node needed: catches an edited source),
and a rebuild into a temporary folder compared byte for byte (catches a changed dependency or build option too).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "js" / "editor"
BUNDLE = ROOT / "workspace" / "web" / "static" / "dist" / "editor.js"
REBUILD = "make bundle"


def sources_hash() -> str:
    """The same digest js/editor/build.mjs writes: every .js/.mjs file of js/editor/ by name, then content."""
    digest = hashlib.sha256()
    for path in sorted(p for p in SOURCES.iterdir() if p.suffix in (".js", ".mjs")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def banner() -> str:
    return BUNDLE.read_text(encoding="utf-8").split("*/", 1)[0]


def test_the_banner_names_the_rebuild_command_and_the_sources_it_was_built_from():
    head = banner()
    assert REBUILD in head and "npm --prefix js run build" in head
    recorded = re.search(r"sources-sha256: ([0-9a-f]{64})", head)
    assert recorded, head
    assert recorded.group(1) == sources_hash(), f"the committed bundle is stale: run `{REBUILD}` and commit it"


def test_a_rebuild_gives_the_committed_bundle_byte_for_byte(tmp_path):
    esbuild = ROOT / "js" / "node_modules" / "esbuild"
    if shutil.which("node") is None or not esbuild.is_dir():
        if os.environ.get("CI"):
            pytest.fail("the bundle check needs node and js/node_modules (make install-dev)", pytrace=False)
        pytest.skip("needs node and js/node_modules (make install-dev)")
    subprocess.run(["node", str(SOURCES / "build.mjs"), str(tmp_path)], cwd=ROOT, check=True, timeout=120,
                   capture_output=True)
    rebuilt = (tmp_path / "editor.js").read_bytes()
    assert rebuilt == BUNDLE.read_bytes(), f"the committed bundle is stale: run `{REBUILD}` and commit it"


def test_the_bundle_is_minified_and_self_contained():
    """One file the page imports from its own origin: no bare imports left for a CDN or an import map."""
    text = BUNDLE.read_text(encoding="utf-8")
    body = text.split("*/", 1)[1]
    assert body.count("\n") < 50  # minified
    assert not re.search(r"""\bimport\s*(?:[\w{}*\s,]+from\s*)?["'](?!\.{0,2}/)""", body)
    assert "export{" in body.replace(" ", "") and "openCollabEditor" in body
