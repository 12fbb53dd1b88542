"""Attack: sign tokens with the signing keys published in the repository.

Issue 10 found production starting with `.env.example`'s placeholders (only their length was checked), so anyone
who read the repository could forge tokens. Here a real gunicorn web process is started in production with each
kind of bad key; it must refuse to boot and say which variable is wrong.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from config import PUBLISHED_SECRETS
from processes import BIN, ROOT, free_port, start

pytestmark = pytest.mark.live
GOOD = "Qm9vdHN0cmFwLXNlY3JldC1rZXktZm9yLXRlc3RzLW9ubHktNzM0OTE"


def published() -> dict[str, str]:
    """The signing keys the repository shows or showed: `.env.example`'s values when it has any (so a new
    placeholder is covered too), else the placeholders it shipped before, which production must still refuse."""
    text = (ROOT / ".env.example").read_text()
    found = {name: value for name, value in re.findall(r"^\s*#?\s*((?:JWT_)?SECRET_KEY)=(\S*)\s*$", text, re.M)
             if value}
    return found or dict(zip(("SECRET_KEY", "JWT_SECRET_KEY"), sorted(PUBLISHED_SECRETS), strict=True))


def boot(live_env: dict[str, str], processes: list, **secrets: str) -> tuple[int | None, str]:
    """Start the web process in production with these keys; its exit code (None: it served) and its log."""
    port = free_port()
    env = {**live_env, "APP_ENV": "production", "PORT": str(port), "BIND_HOST": "127.0.0.1",
           "SECRET_KEY": GOOD, "JWT_SECRET_KEY": GOOD[::-1], **secrets}
    proc = start([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"], env, f"web-{port}")
    processes.append(proc)
    try:
        code = proc.popen.wait(60)
    except subprocess.TimeoutExpired:  # still running: it started with these keys
        code = None
    return code, proc.output()


def test_production_refuses_the_published_placeholders(live_env, processes):
    assert set(published().values()) <= PUBLISHED_SECRETS  # refused even without the 'change-me' marker
    code, log = boot(live_env, processes, **published())
    assert code is not None and code != 0, "production started with the .env.example signing keys"
    refusal = [line for line in log.splitlines() if "configuration refused" in line]
    assert len(refusal) == 1, log[-3000:]
    assert "SECRET_KEY is a published placeholder" in refusal[0]
    assert "JWT_SECRET_KEY is a published placeholder" in refusal[0]
    assert "Traceback" not in log


@pytest.mark.parametrize(("variable", "value", "reason"), [
    ("JWT_SECRET_KEY", "prod-7f3a9c2e4b1d8f6a-change-me-0e5d2c9b7a4f1e3d", "published placeholder"),
    ("SECRET_KEY", "a1" * 40, "too little entropy"),
    ("JWT_SECRET_KEY", "Xk9#mQ2$vL7p", "too short"),
])
def test_production_refuses_weak_keys_naming_the_variable(live_env, processes, variable, value, reason):
    code, log = boot(live_env, processes, **{variable: value})
    assert code is not None and code != 0, f"production started with {variable}={value!r}"
    refusal = next(line for line in log.splitlines() if "configuration refused" in line)
    other = "SECRET_KEY" if variable == "JWT_SECRET_KEY" else "JWT_SECRET_KEY"
    assert f"{variable} " in refusal and reason in refusal
    assert re.search(rf"\b{other}\b", refusal) is None, "only the wrong variable is named"
