"""Operator commands: `flask --app workspace:create_app <group> <command>`.

    users create EMAIL [--name NAME]          (the password is prompted for, never an argument: shell history)
    users list [--search TEXT] [--limit N]
    projects promote PROJECT_ID EMAIL         (make a user an owner of a project: the last owner left, say)
    jobs requeue-failed [--project ID] [--since-hours N] [--job ID ...]
    jobs purge-idempotency-keys

Each command runs the same services as the API, so caches, events and policies stay consistent.
"""

from __future__ import annotations

from datetime import timedelta

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import AppGroup

from .auth import service as auth
from .errors import ApiError
from .extensions import db
from .jobs import service as jobs
from .models import Membership, Project, User, utcnow
from .projects import members

users_cli = AppGroup("users", help="Accounts.")
projects_cli = AppGroup("projects", help="Projects and their members.")
jobs_cli = AppGroup("jobs", help="Background jobs.")

MIN_PASSWORD = 8


def _fail(message: str) -> None:
    raise click.ClickException(message)


@users_cli.command("create")
@click.argument("email")
@click.option("--name", default=None, help="Display name (default: the part of the email before @).")
@click.password_option(help="Prompted for (twice) when not given; from stdin when not a terminal.")
def create_user(email: str, name: str | None, password: str) -> None:
    """Create an account (as signup does, without a token)."""
    if len(password) < MIN_PASSWORD:
        _fail(f"The password needs at least {MIN_PASSWORD} characters.")
    if "@" not in email:
        _fail("That is not an email address.")
    try:
        user = auth.signup(email, password, name)
    except ApiError as exc:
        _fail(exc.message)
    click.echo(f"Created user {user.id} <{user.email}>.")


@users_cli.command("list")
@click.option("--search", default=None, help="Only emails or names containing this text.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
def list_users(search: str | None, limit: int) -> None:
    """Accounts, oldest first, with how many projects each belongs to."""
    memberships = (sa.select(sa.func.count()).where(Membership.user_id == User.id)
                   .correlate(User).scalar_subquery())
    query = sa.select(User, memberships).order_by(User.id).limit(limit)
    if search:
        pattern = f"%{search.lower()}%"
        query = query.where(sa.or_(User.email.like(pattern), sa.func.lower(User.name).like(pattern)))
    rows = db.session.execute(query).all()
    click.echo(f"{'id':>6}  {'email':<40} {'name':<24} {'projects':>8}  created")
    for user, project_count in rows:
        click.echo(f"{user.id:>6}  {user.email:<40} {user.name[:24]:<24} {project_count:>8}  "
                   f"{user.created_at.isoformat(timespec='seconds')}")
    click.echo(f"{len(rows)} user(s).")


@projects_cli.command("promote")
@click.argument("project_id", type=int)
@click.argument("email")
def promote_owner(project_id: int, email: str) -> None:
    """Make the user with EMAIL an owner of the project (adding them if they are not a member)."""
    project = db.session.get(Project, project_id)
    if project is None:
        _fail(f"No project {project_id}.")
    user = auth.find_user_by_email(email)
    if user is None:
        _fail(f"No user with email {email}.")
    if not members.make_owner(project_id, user.id):
        click.echo(f"{user.email} already owns project {project_id}.")
        return
    click.echo(f"{user.email} now owns project {project_id} ({project.name}).")


@jobs_cli.command("requeue-failed")
@click.option("--project", "project_id", type=int, default=None, help="Only this project's jobs.")
@click.option("--since-hours", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Only jobs that failed in the last N hours.")
@click.option("--job", "job_ids", type=int, multiple=True, help="Only this job (repeatable).")
def requeue_failed(project_id: int | None, since_hours: float | None, job_ids: tuple[int, ...]) -> None:
    """Give failed jobs a fresh set of attempts and put them back on the queue."""
    since = utcnow() - timedelta(hours=since_hours) if since_hours else None
    count = jobs.requeue_failed_jobs(project_id=project_id, since=since, job_ids=list(job_ids) or None)
    click.echo(f"Re-enqueued {count} failed job(s).")


@jobs_cli.command("purge-idempotency-keys")
def purge_idempotency_keys() -> None:
    """Forget Idempotency-Keys past their retention, so the same key may start a new job."""
    count = jobs.purge_expired_idempotency_keys()
    click.echo(f"Purged {count} expired idempotency key(s).")


def init_app(app: Flask) -> None:
    for group in (users_cli, projects_cli, jobs_cli):
        app.cli.add_command(group)
