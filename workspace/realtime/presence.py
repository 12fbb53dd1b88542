"""Who is in which project's room: kept in Redis, so every process answers the same, and honest after a crash.

Keys (under the app's prefix):
  rt:presence:<project>     hash "<proc>|<sid>" -> {"user_id", "name", "since"}: one field per joined socket
  rt:proc:<proc>:alive      string with TTL PRESENCE_TTL_SECONDS, refreshed by the owning process's heartbeat
  rt:proc:<proc>:projects   set of projects the process has joined sockets in (what a reaper must clean up)
  rt:procs                  hash proc -> start time: every process that registered and has not been reaped

A user is present while any of their sockets is (two tabs appear once). Entries count only while their process's
heartbeat key lives: a kill -9'd process's users drop out of every listing within the TTL, and a reaper on a
surviving process then removes the entries and tells the room (USER_LEAVE). Join/leave decisions ("first socket of
this user?", "last one?") read the hash in the same MULTI as the write, so two processes racing cannot both miss.
"""

from __future__ import annotations

import json
from typing import Any

from flask import current_app

from ..extensions import redis_store
from ..models.types import utcnow

SEP = "|"


def _presence_key(project_id: int) -> str:
    return redis_store.key("rt", "presence", project_id)


def _alive_key(proc: str) -> str:
    return redis_store.key("rt", "proc", proc, "alive")


def _projects_key(proc: str) -> str:
    return redis_store.key("rt", "proc", proc, "projects")


def _procs_key() -> str:
    return redis_store.key("rt", "procs")


def field(proc: str, sid: str) -> str:
    return f"{proc}{SEP}{sid}"


def split_field(name: str) -> tuple[str, str]:
    proc, _, sid = name.partition(SEP)
    return proc, sid


def _user_ids(values: list[str]) -> list[int]:
    ids = []
    for value in values:
        try:
            ids.append(int(json.loads(value)["user_id"]))
        except (ValueError, KeyError, TypeError):
            continue  # a corrupt entry must not break presence for everyone else
    return ids


def add(project_id: int, proc: str, sid: str, user: dict[str, Any]) -> bool:
    """Record a joined socket; True when it is the user's first socket in the project (the room gets USER_JOIN)."""
    entry = json.dumps({"user_id": user["id"], "name": user["name"], "since": utcnow().isoformat()})
    pipe = redis_store.client.pipeline()
    pipe.hset(_presence_key(project_id), field(proc, sid), entry)
    pipe.hvals(_presence_key(project_id))
    pipe.sadd(_projects_key(proc), project_id)
    _, values, _ = pipe.execute()
    return _user_ids(values).count(user["id"]) == 1


def remove(project_id: int, proc: str, sid: str) -> dict[str, Any] | None:
    """Forget a socket; returns the user `{id, name}` when that was their last socket here (USER_LEAVE), else None."""
    key = _presence_key(project_id)
    pipe = redis_store.client.pipeline()
    pipe.hget(key, field(proc, sid))
    pipe.hdel(key, field(proc, sid))
    pipe.hvals(key)
    entry, removed, remaining = pipe.execute()
    if not removed or entry is None:
        return None
    try:
        data = json.loads(entry)
        user = {"id": int(data["user_id"]), "name": data.get("name", "")}
    except (ValueError, KeyError, TypeError):
        return None
    return None if user["id"] in _user_ids(remaining) else user


def sockets_of(project_id: int, user_id: int) -> list[tuple[str, str]]:
    """(proc, sid) of every socket of `user_id` joined to the project, on any process."""
    entries = redis_store.client.hgetall(_presence_key(project_id))
    return [split_field(name) for name, value in entries.items() if _user_ids([value]) == [user_id]]


def online(project_id: int) -> list[dict[str, Any]]:
    """The users present in the project on live processes: `[{user_id, name, since}]`, longest present first."""
    client = redis_store.client
    entries = client.hgetall(_presence_key(project_id))
    procs = sorted({split_field(name)[0] for name in entries})
    if not procs:
        return []
    pipe = client.pipeline(transaction=False)
    for proc in procs:
        pipe.exists(_alive_key(proc))
    alive = {proc for proc, up in zip(procs, pipe.execute(), strict=True) if up}
    users: dict[int, dict[str, Any]] = {}
    for name, value in entries.items():
        if split_field(name)[0] not in alive:
            continue
        try:
            data = json.loads(value)
            user_id, since = int(data["user_id"]), data["since"]
        except (ValueError, KeyError, TypeError):
            continue
        known = users.get(user_id)
        if known is None or since < known["since"]:
            users[user_id] = {"user_id": user_id, "name": data.get("name", ""), "since": since}
    return sorted(users.values(), key=lambda u: (u["since"], u["user_id"]))


def heartbeat(proc: str) -> bool:
    """Refresh this process's liveness; True when Redis had lost it (first beat, TTL missed, Redis restarted)."""
    ttl = current_app.config["PRESENCE_TTL_SECONDS"]
    pipe = redis_store.client.pipeline()
    pipe.set(_alive_key(proc), utcnow().isoformat(), ex=ttl, get=True)
    pipe.hsetnx(_procs_key(), proc, utcnow().isoformat())
    previous, _ = pipe.execute()
    return previous is None


def dead_processes(me: str) -> list[str]:
    """Registered processes whose heartbeat has expired."""
    client = redis_store.client
    procs = [p for p in client.hkeys(_procs_key()) if p != me]
    if not procs:
        return []
    pipe = client.pipeline(transaction=False)
    for proc in procs:
        pipe.exists(_alive_key(proc))
    return [proc for proc, up in zip(procs, pipe.execute(), strict=True) if not up]


def claim(proc: str) -> bool:
    """Take the job of reaping `proc`; exactly one process wins (HDEL answers 1 once)."""
    return bool(redis_store.client.hdel(_procs_key(), proc))


def reap(proc: str) -> list[tuple[int, dict[str, Any]]]:
    """Remove every entry of a dead process; returns (project_id, user) for each user who thereby left."""
    client = redis_store.client
    left = []
    for raw_project in client.smembers(_projects_key(proc)):
        project_id = int(raw_project)
        for name in client.hkeys(_presence_key(project_id)):
            owner, sid = split_field(name)
            if owner == proc:
                user = remove(project_id, proc, sid)
                if user:
                    left.append((project_id, user))
    client.delete(_projects_key(proc))
    return left


def forget_process(proc: str) -> None:
    """A process shutting down cleanly (after removing its sockets): nothing left for a reaper."""
    pipe = redis_store.client.pipeline()
    pipe.delete(_alive_key(proc), _projects_key(proc))
    pipe.hdel(_procs_key(), proc)
    pipe.execute()


def clear_project(project_id: int) -> None:
    redis_store.client.delete(_presence_key(project_id))


def joined_sockets() -> int:
    """How many sockets live processes have joined to project rooms (the fields of live processes, every project)."""
    client = redis_store.client
    procs = client.hkeys(_procs_key())
    if not procs:
        return 0
    pipe = client.pipeline(transaction=False)
    for proc in procs:
        pipe.exists(_alive_key(proc))
        pipe.smembers(_projects_key(proc))
    answers = pipe.execute()
    live = {proc: projects for proc, up, projects in zip(procs, answers[::2], answers[1::2], strict=True) if up}
    projects = sorted({int(p) for ps in live.values() for p in ps})
    pipe = client.pipeline(transaction=False)
    for project_id in projects:
        pipe.hkeys(_presence_key(project_id))
    return sum(1 for fields in pipe.execute() for name in fields if split_field(name)[0] in live)
