"""The app factory and configuration."""

import secrets

import pytest

from config import ConfigError, database_url, load_config
from workspace import create_app


def test_testing_config_is_used(app):
    assert app.config["APP_ENV"] == "testing"
    assert app.config["TESTING"] is True


def test_heroku_postgres_url_is_rewritten():
    assert database_url("postgres://u:p@h:5432/d") == "postgresql://u:p@h:5432/d"
    assert database_url("postgresql://h/d") == "postgresql://h/d"
    assert database_url(None) is None


def test_production_refuses_default_secrets(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("JWT_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_config("production")


def test_production_refuses_short_secrets(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "short")
    monkeypatch.setenv("JWT_SECRET_KEY", "x" * 40)
    with pytest.raises(ConfigError, match="too short"):
        load_config("production")


def test_production_starts_with_secrets_and_no_cors_by_default(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", secrets.token_urlsafe(48))
    monkeypatch.setenv("JWT_SECRET_KEY", secrets.token_urlsafe(48))
    monkeypatch.delenv("CORS_ORIGINS", raising=False)
    config = load_config("production")
    assert config.CORS_ORIGINS == []
    assert config.TESTING is False


def test_unknown_app_env_is_refused():
    with pytest.raises(ConfigError, match="APP_ENV"):
        load_config("staging")


def test_integer_settings_are_checked(monkeypatch):
    monkeypatch.setenv("ACCESS_TOKEN_MINUTES", "soon")
    with pytest.raises(ConfigError, match="ACCESS_TOKEN_MINUTES"):
        load_config("development")


def test_development_generates_secrets_and_allows_any_origin(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("CORS_ORIGINS", raising=False)
    first, second = load_config("development"), load_config("development")
    assert first.SECRET_KEY != second.SECRET_KEY
    assert first.CORS_ORIGINS == ["*"]


def test_embedded_default_uses_sqlite_in_the_instance_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    app = create_app({"SQLALCHEMY_DATABASE_URI": None})
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert app.config["SQLALCHEMY_DATABASE_URI"].endswith("instance/workspace.db")
    assert app.config["RATELIMIT_STORAGE_URI"] == "memory://"
