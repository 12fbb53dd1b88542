"""Which signing keys production accepts (config.secret_problem); the live refusal is in tests/security."""

import secrets
import uuid

import pytest

from config import ConfigError, load_config, secret_problem


@pytest.mark.parametrize("value", [secrets.token_urlsafe(32), secrets.token_urlsafe(48), secrets.token_hex(32),
                                   uuid.uuid4().hex, "correct horse battery staple, said nobody"])
def test_random_keys_are_accepted(value):
    assert secret_problem(value) is None


@pytest.mark.parametrize(("value", "reason"), [
    ("change-me-to-a-long-random-string", "published placeholder"),
    ("CHANGE-ME" + secrets.token_urlsafe(40), "published placeholder"),
    (secrets.token_urlsafe(40) + "changeme", "published placeholder"),
    (secrets.token_urlsafe(12), "too short"),
    ("s" * 64, "too little entropy"),
    ("passwordpasswordpasswordpassword", "too little entropy"),
    ("Tr0ub4dor&3" * 4, "repeated pattern"),
])
def test_weak_keys_are_refused_with_the_reason(value, reason):
    assert reason in (secret_problem(value) or "")


def test_production_names_every_wrong_variable(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    monkeypatch.setenv("JWT_SECRET_KEY", secrets.token_urlsafe(48))
    with pytest.raises(ConfigError, match=r"^SECRET_KEY has too little entropy") as refused:
        load_config("production")
    assert "JWT_SECRET_KEY" not in str(refused.value)
