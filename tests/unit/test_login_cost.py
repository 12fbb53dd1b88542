"""Login costs one Argon2 verification whether the email exists or not: the dummy hash is computed once."""

import pytest
from argon2 import PasswordHasher, extract_parameters

from workspace.auth import service
from workspace.errors import Unauthorized


def test_unknown_email_and_wrong_password_cost_one_verification_each(app, monkeypatch):
    calls = {"hash": 0, "verify": 0}
    real_hash, real_verify = PasswordHasher.hash, PasswordHasher.verify

    def counted(name, real):
        def spy(self, *args, **kwargs):
            calls[name] += 1
            return real(self, *args, **kwargs)
        return spy

    with app.app_context():
        service.signup("known@example.com", "correct horse battery")
        monkeypatch.setattr(PasswordHasher, "hash", counted("hash", real_hash))
        monkeypatch.setattr(PasswordHasher, "verify", counted("verify", real_verify))
        for email in ("nobody@example.com", "known@example.com", "nobody2@example.com", "known@example.com"):
            with pytest.raises(Unauthorized):
                service.authenticate(email, "wrong password")
        assert calls == {"hash": 1, "verify": 4}  # one dummy hash for the app's life, one check per attempt
        dummy = app.extensions["dummy_password_hash"]
        real = service.find_user_by_email("known@example.com").password_hash
        assert extract_parameters(dummy) == extract_parameters(real)  # same parameters: same cost to check
