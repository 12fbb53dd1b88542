"""The operator CLI (`flask --app workspace:create_app users|projects|jobs ...`), through Flask's CLI runner."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from teams import create_project, invite

from workspace import events
from workspace.extensions import db
from workspace.jobs.service import IDEMPOTENCY_TTL
from workspace.models import Job, JobStatus, Membership, Role, User, utcnow


def invoke(app, *args, input=None):
    return app.test_cli_runner().invoke(args=list(args), input=input)


def test_create_user_prompts_for_the_password_and_can_log_in(make_app):
    app = make_app(RATELIMIT_ENABLED=False)
    result = invoke(app, "users", "create", "Ops@Example.com", "--name", "Ops", input="long passphrase\n" * 2)
    assert result.exit_code == 0, result.output
    assert "Created user" in result.output and "ops@example.com" in result.output
    assert "long passphrase" not in result.output
    credentials = {"email": "ops@example.com", "password": "long passphrase"}
    assert app.test_client().post("/api/v1/auth/login", json=credentials).status_code == 200


def test_create_user_refuses_duplicates_and_weak_passwords(app, make_user):
    user = make_user()
    duplicate = invoke(app, "users", "create", user.email, "--password", "long enough pw")
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output
    weak = invoke(app, "users", "create", "new@example.com", "--password", "short")
    assert weak.exit_code == 1 and "at least 8" in weak.output
    not_email = invoke(app, "users", "create", "nobody", "--password", "long enough pw")
    assert not_email.exit_code == 1
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1


def test_list_users_with_search_and_project_counts(app, make_user):
    alice, bob = make_user(name="Alice"), make_user(name="Bob")
    create_project(app.test_client(), alice)
    result = invoke(app, "users", "list")
    assert result.exit_code == 0, result.output
    assert alice.email in result.output and bob.email in result.output
    assert "2 user(s)." in result.output
    alice_line = next(line for line in result.output.splitlines() if alice.email in line)
    assert alice_line.split()[-2] == "1"  # one project
    only_bob = invoke(app, "users", "list", "--search", "bob")
    assert bob.email in only_bob.output and alice.email not in only_bob.output


def test_promote_makes_a_member_or_a_stranger_an_owner(app, make_user):
    client = app.test_client()
    owner, collaborator, stranger = make_user(), make_user(), make_user()
    project_id = create_project(client, owner)["id"]
    invite(client, owner, project_id, collaborator, "collaborator")
    # The collaborator's cached list must not keep saying "collaborator" after the promotion.
    assert client.get("/api/v1/projects/", headers=collaborator.headers).json["items"][0]["role"] == "collaborator"

    announced = []

    def changed(sender, **kwargs):
        announced.append(kwargs)

    with events.membership_changed.connected_to(changed, sender=app):
        result = invoke(app, "projects", "promote", str(project_id), collaborator.email)
    assert result.exit_code == 0, result.output
    # The same event the API sends: the user's sockets hear MEMBERSHIP_CHANGED, the list cache forgets them.
    assert announced == [{"project_id": project_id, "user_id": collaborator.id, "role": "owner"}]
    assert client.get("/api/v1/projects/", headers=collaborator.headers).json["items"][0]["role"] == "owner"
    assert invoke(app, "projects", "promote", str(project_id), stranger.email).exit_code == 0
    with app.app_context():
        roles = dict(db.session.execute(sa.select(Membership.user_id, Membership.role)
                                        .where(Membership.project_id == project_id)).all())
    assert roles == {owner.id: Role.OWNER, collaborator.id: Role.OWNER, stranger.id: Role.OWNER}
    again = invoke(app, "projects", "promote", str(project_id), stranger.email)
    assert again.exit_code == 0 and "already owns" in again.output
    assert invoke(app, "projects", "promote", "999999", stranger.email).exit_code == 1
    assert invoke(app, "projects", "promote", str(project_id), "nobody@example.com").exit_code == 1


def _job(project_id: int, user_id: int, **values) -> Job:
    defaults = {"type": "echo", "payload": {}, "status": JobStatus.FAILED, "attempts": 3, "max_attempts": 3}
    job = Job(project_id=project_id, user_id=user_id, **{**defaults, **values})
    db.session.add(job)
    db.session.commit()
    return job


def test_requeue_failed_jobs(app, make_user):
    user = make_user()
    project_id = create_project(app.test_client(), user)["id"]
    with app.app_context():
        failed = _job(project_id, user.id, error="boom", finished_at=utcnow()).id
        succeeded = _job(project_id, user.id, status=JobStatus.SUCCEEDED).id
    result = invoke(app, "jobs", "requeue-failed", "--project", str(project_id))
    assert result.exit_code == 0, result.output
    assert "Re-enqueued 1 failed job(s)." in result.output
    with app.app_context():
        assert db.session.get(Job, failed).status == JobStatus.QUEUED
        assert db.session.get(Job, failed).attempts == 0
        assert db.session.get(Job, succeeded).status == JobStatus.SUCCEEDED
    assert "Re-enqueued 0" in invoke(app, "jobs", "requeue-failed", "--job", str(failed)).output


def test_purge_expired_idempotency_keys(app, make_user):
    user = make_user()
    project_id = create_project(app.test_client(), user)["id"]
    with app.app_context():
        old = _job(project_id, user.id, idempotency_key="old-key",
                   created_at=utcnow() - IDEMPOTENCY_TTL - timedelta(minutes=1)).id
        fresh = _job(project_id, user.id, idempotency_key="fresh-key").id
    result = invoke(app, "jobs", "purge-idempotency-keys")
    assert result.exit_code == 0, result.output
    assert "Purged 1 expired idempotency key(s)." in result.output
    with app.app_context():
        assert db.session.get(Job, old).idempotency_key is None
        assert db.session.get(Job, fresh).idempotency_key == "fresh-key"
