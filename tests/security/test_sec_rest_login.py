"""Attacks on login: guess one account's password from many addresses; stall a process with logins.

Issue 10 found no per-account throttle (only the per-IP limit, which many addresses defeat) and an unknown email
costing twice a wrong password (the dummy hash was recomputed on every call); issue 13 found Argon2 running on the
green hub, so concurrent logins stalled every other request of the process. Against live processes: an account's
failures, on whichever process, put that account in backoff (429 + Retry-After, even for the right password) while
other accounts log in; and while several slow logins hash, `/healthz` keeps answering under eventlet and gevent.
"""

from __future__ import annotations

import threading

import pytest
import requests
from security_stack import PASSWORD, signup, webs

pytestmark = pytest.mark.live
LOGIN = "/api/v1/auth/login"


def login(base: str, email: str, password: str, **kwargs) -> requests.Response:
    return requests.post(base + LOGIN, json={"email": email, "password": password}, timeout=60, **kwargs)


def test_many_addresses_cannot_keep_guessing_one_account(live_env, processes):
    # The per-IP limit is off in live_env: each guess may as well come from another address.
    env = {**live_env, "LOGIN_FAILURES_BEFORE_BACKOFF": "4", "LOGIN_BACKOFF_BASE_SECONDS": "120"}
    a, b = webs(env, processes, count=2)
    victim, bystander = signup(a), signup(b)
    for n in range(4):
        guess = login((a, b)[n % 2], victim["email"].upper(), f"guess {n}")
        assert guess.status_code == 401, guess.text
    for base in (a, b):
        refused = login(base, victim["email"], PASSWORD)  # even the right password waits out the backoff
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 0 < int(refused.headers["Retry-After"]) <= 120
    assert login(b, bystander["email"], PASSWORD).status_code == 200
    # An unknown email is throttled the same way, so the 429 does not reveal which accounts exist.
    for n in range(4):
        assert login(a, "nobody@example.com", f"guess {n}").status_code == 401
    assert login(b, "nobody@example.com", "guess").status_code == 429


@pytest.mark.parametrize("async_mode", ["eventlet", "gevent"])
def test_slow_password_hashing_does_not_stall_the_process(live_env, processes, async_mode):
    """Four logins with an expensive Argon2 in flight; `/healthz` must keep answering meanwhile. On the hub, each
    hash holds the whole process, so hardly any /healthz answer can come back before the first login does."""
    env = {**live_env, "ARGON2_TIME_COST": "16", "ARGON2_MEMORY_KIB": "65536"}
    (base,) = webs(env, processes, count=1, async_mode=async_mode)
    user = signup(base)
    results: list[int] = []
    first_login_done = threading.Event()

    def one_login() -> None:
        results.append(login(base, user["email"], PASSWORD).status_code)
        first_login_done.set()

    threads = [threading.Thread(target=one_login) for _ in range(4)]
    for thread in threads:
        thread.start()
    answered = 0
    session = requests.Session()
    for _ in range(2000):  # bounded; ends at the first completed login
        if first_login_done.is_set():
            break
        assert session.get(f"{base}/healthz", timeout=60).status_code == 200
        answered += 1 if not first_login_done.is_set() else 0
    for thread in threads:
        thread.join(120)
    assert results == [200] * 4
    assert answered >= 20, f"/healthz answered only {answered} times while 4 logins hashed ({async_mode})"
