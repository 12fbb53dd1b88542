"""Attack: keep a session alive through a logout that "failed".

Issue 10 found that a bad refresh token in logout's body gave 401 while the access token stayed valid (the web
client signs out locally, so the user believes the session ended), and that a spent refresh token shown at logout
did not revoke its family. Against two live web processes: logout always revokes the access token it is called
with, on every process; a valid refresh token in the body stops working; a spent one revokes its whole family.
"""

from __future__ import annotations

import pytest
import requests
from security_stack import bearer, signup, webs

pytestmark = pytest.mark.live
API = "/api/v1/auth"


def me(base: str, token: str) -> requests.Response:
    return requests.get(f"{base}{API}/me", headers=bearer(token), timeout=10)


def refresh(base: str, token: str) -> requests.Response:
    return requests.post(f"{base}{API}/refresh", headers=bearer(token), timeout=10)


def logout(base: str, access: str, body: dict | None = None) -> requests.Response:
    return requests.post(f"{base}{API}/logout", headers=bearer(access), json=body, timeout=10)


@pytest.fixture
def two(live_env, processes):
    return webs(live_env, processes, count=2)


@pytest.mark.parametrize("bad", ["garbage", 12345, "x" * 6000])
def test_a_bad_refresh_token_does_not_keep_the_access_token_alive(two, bad):
    a, b = two
    victim = signup(a)
    assert me(b, victim["access_token"]).status_code == 200
    response = logout(a, victim["access_token"], {"refresh_token": bad})
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] in {"invalid_token", "wrong_token_type"}
    for base in (a, b):
        after = me(base, victim["access_token"])
        assert after.status_code == 401 and after.json()["error"]["code"] == "token_revoked", after.text


def test_someone_elses_refresh_token_still_revokes_my_access_token_only(two):
    a, b = two
    mine, theirs = signup(a), signup(a)
    assert logout(a, mine["access_token"], {"refresh_token": theirs["refresh_token"]}).status_code == 401
    assert me(b, mine["access_token"]).status_code == 401
    assert me(b, theirs["access_token"]).status_code == 200
    assert refresh(b, theirs["refresh_token"]).status_code == 200


def test_a_valid_refresh_token_at_logout_stops_working_everywhere(two):
    a, b = two
    session = signup(a)
    assert logout(a, session["access_token"], {"refresh_token": session["refresh_token"]}).status_code == 204
    assert me(b, session["access_token"]).status_code == 401
    assert refresh(b, session["refresh_token"]).status_code == 401


def test_a_spent_refresh_token_at_logout_revokes_its_whole_family(two):
    """The thief refreshed with a stolen refresh token; the owner logs out showing the (now spent) original: the
    thief's fresh pair must die with it, as a replay at /refresh would kill it."""
    a, b = two
    owner = signup(a)
    stolen = refresh(b, owner["refresh_token"])
    assert stolen.status_code == 200
    thief = stolen.json()
    response = logout(a, owner["access_token"], {"refresh_token": owner["refresh_token"]})
    assert response.status_code == 204, response.text
    assert me(b, thief["access_token"]).status_code == 401
    assert refresh(b, thief["refresh_token"]).status_code == 401
