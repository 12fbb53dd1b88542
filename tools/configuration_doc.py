"""Write docs/configuration.md from the code that reads the environment: `python tools/configuration_doc.py`.

Every environment variable is read in `config.py` (the app) or `gunicorn.conf.py` (the web server) through
`_env`/`_int`/`_float`/`_bool`/`os.environ.get`; the comment lines just above the assignment (and a trailing comment
on it) are its description. `make docs` rewrites the page and `tests/unit/test_configuration_doc.py` fails when the
committed page is not what this prints, so the page cannot drift from the code.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("config.py", "gunicorn.conf.py")
READERS = {"_env": "text", "_int": "integer", "_float": "number", "_bool": "boolean", "get": "text",
           "setdefault": "text"}
HEADER = """# Configuration

Every setting comes from an environment variable (Procfile platforms, Docker and Kubernetes all set them that way);
nothing is read from files. `APP_ENV` picks the environment: `development` (the default, embedded when
`DATABASE_URL`/`REDIS_URL` are unset), `testing` or `production` (which refuses to start without strong secrets).

This page is generated from `config.py` and `gunicorn.conf.py` by `make docs` (`python tools/configuration_doc.py`);
a unit test fails when it is out of date, so edit the comments in those files, not this page.
"""


def _literal(node: ast.AST | None, source: str) -> str:
    if node is None:
        return "unset"
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return f"`{ast.get_source_segment(source, node)}`"
    return "unset" if value in (None, "") else f"`{value}`"


def _reads(node: ast.AST) -> list[ast.Call]:
    """The environment reads inside `node` whose first argument is a literal variable name."""
    calls = []
    for call in ast.walk(node):
        if not isinstance(call, ast.Call) or not call.args or not isinstance(call.args[0], ast.Constant):
            continue
        name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
        if name in READERS and isinstance(call.args[0].value, str) and call.args[0].value.isupper():
            calls.append(call)
    return calls


def _comment_above(lines: list[str], lineno: int) -> str:
    """The run of `#` comment lines directly above line `lineno` (1-based), plus a trailing comment on it."""
    text, i = [], lineno - 2
    while i >= 0 and lines[i].strip().startswith("#"):
        text.insert(0, lines[i].strip().lstrip("#").strip())
        i -= 1
    code = lines[lineno - 1]
    if "  # " in code:
        text.append(code.split("  # ", 1)[1].strip())
    return " ".join(text)


def settings(path: Path) -> list[tuple[str, str, str, str]]:
    """(variable, kind, default, description) for each variable `path` reads, in source order."""
    source = path.read_text()
    lines = source.splitlines()
    rows, seen = [], set()
    for stmt in ast.walk(ast.parse(source)):
        if not isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.Expr)):
            continue
        for call in _reads(stmt):
            name = call.args[0].value
            if name in seen:
                continue
            seen.add(name)
            func = call.func.attr if isinstance(call.func, ast.Attribute) else call.func.id
            default = _literal(call.args[1] if len(call.args) > 1 else None, source)
            rows.append((name, READERS[func], default, _comment_above(lines, stmt.lineno)))
    return sorted(rows, key=lambda row: lines_index(source, row[0]))


def lines_index(source: str, name: str) -> int:
    return source.find(f'"{name}"')


def render() -> str:
    parts = [HEADER]
    for filename in SOURCES:
        parts.append(f"\n## Read by `{filename}`\n\n| variable | kind | default | meaning |\n|---|---|---|---|")
        for name, kind, default, text in settings(ROOT / filename):
            parts.append(f"| `{name}` | {kind} | {default} | {text.replace('|', '/') or '—'} |")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    target = ROOT / "docs" / "configuration.md"
    if sys.argv[1:] == ["--check"]:
        sys.exit(0 if target.read_text() == render() else "docs/configuration.md is out of date: run make docs")
    target.write_text(render())
