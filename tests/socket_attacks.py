"""Shared by the socket attack replays in tests/security/: live web processes, clients, and tokens of any lifetime.

Every process shares the test's database, Redis prefix and Socket.IO channel (`live_env`), and the signing keys of
the in-process app (`make_app`), so tokens minted here work against them.
"""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from flask_jwt_extended import create_access_token

from processes import start_web


def webs(live_env: dict[str, str], processes: list, count: int = 2, **env: str) -> list[tuple[object, str]]:
    """`count` gunicorn web processes exactly as the Procfile runs them, started side by side."""
    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(start_web, {**live_env, "SHUTDOWN_DRAIN_SECONDS": "1", **env}) for _ in range(count)]
        started = [future.result() for future in futures]
    processes.extend(proc for proc, _ in started)
    return started


def stop_all(processes: list) -> None:
    """SIGTERM every web process at once, then wait (stopping them one by one waits out each drain in turn)."""
    for proc in processes:
        proc.send_signal(signal.SIGTERM)
    for proc in processes:
        proc.stop()


def access_token(app, user, seconds: float, family: str = "attack-family") -> str:
    """An access token of `user` that expires in `seconds` (the API only issues whole minutes)."""
    with app.app_context():
        return create_access_token(identity=str(user.id), additional_claims={"fam": family, "name": user.name},
                                   expires_delta=timedelta(seconds=seconds))
