"""Load time of a co-edited document with a long history, before and after compaction (issue 11).

Stores N one-keystroke Yjs updates (default 100,000, as a typist's client would produce them) for one document in
its own PostgreSQL schema, then measures a cold load (`documents.store.state_for` with the process cache emptied:
what a process that has never seen the document does for the first editor) REPEAT times, runs the compaction, and
measures again. Run it under the bench lock: `flock /tmp/workspace-bench.lock .venv/bin/python bench/coedit_load.py
[N]`. Needs PostgreSQL and Redis as the tests do (TEST_DATABASE_URL / TEST_REDIS_URL).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sandbox import drop_sandbox  # noqa: E402

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REPEAT = 5


def main(count: int) -> None:
    schema = f"bench_coedit_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    os.environ.update({"APP_ENV": "testing", "REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": prefix,
                       "DATABASE_URL": f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}",
                       "SECRET_KEY": "bench-secret-key-0123456789", "JWT_SECRET_KEY": "bench-jwt-secret-0123456789",
                       "LOG_LEVEL": "WARNING", "COEDIT_COMPACT_THRESHOLD": str(10 * count)})
    from flask_migrate import upgrade
    from pycrdt import Text

    from workspace import create_app
    from workspace.documents import compaction, crdt, store
    from workspace.extensions import db
    from workspace.models import Document, DocumentUpdate, Project, User

    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    app = create_app()
    try:
        with app.app_context():
            upgrade(directory=str(ROOT / "migrations"))
            user = User(email="bench@example.com", name="b", password_hash="x")
            db.session.add(user)
            db.session.flush()
            project = Project(name="bench", owner_id=user.id)
            db.session.add(project)
            db.session.flush()
            document = Document(project_id=project.id, path="long.txt", snapshot_upto=0, update_count=count)
            db.session.add(document)
            db.session.commit()
            client = crdt.new_doc()
            text = client.get(crdt.TEXT_NAME, type=Text)
            updates: list[bytes] = []
            client.observe(lambda event: updates.append(event.update))
            started = time.perf_counter()
            for i in range(count):
                text.insert(len(text), "abcdefghij\n"[i % 11])
            rows = [{"document_id": document.id, "data": u, "user_id": user.id} for u in updates]
            for start in range(0, len(rows), 5000):
                db.session.execute(sa.insert(DocumentUpdate), rows[start:start + 5000])
            db.session.commit()
            print(f"stored {count} updates in {time.perf_counter() - started:.1f} s; load {os.getloadavg()}")
            expected = str(text)

            def cold_loads() -> list[float]:
                times = []
                for _ in range(REPEAT):
                    store.forget(project.id, "long.txt")
                    begin = time.perf_counter()
                    state = store.state_for(project.id, "long.txt")
                    times.append(time.perf_counter() - begin)
                    loaded = crdt.new_doc()
                    crdt.apply(loaded, state)
                    assert crdt.text_of(loaded) == expected
                return times

            before = cold_loads()
            begin = time.perf_counter()
            result = compaction.compact(document.id)
            took = time.perf_counter() - begin
            after = cold_loads()
            print(f"cold load with {count} stored updates: median {statistics.median(before) * 1000:.1f} ms "
                  f"(min {min(before) * 1000:.1f}, max {max(before) * 1000:.1f})")
            print(f"compaction: {result['merged']} updates into {result['snapshot_bytes']} bytes in {took:.1f} s")
            print(f"cold load after compaction: median {statistics.median(after) * 1000:.1f} ms "
                  f"(min {min(after) * 1000:.1f}, max {max(after) * 1000:.1f}); "
                  f"ratio {statistics.median(before) / statistics.median(after):.0f}x; load {os.getloadavg()}")
            db.session.remove()
    finally:
        with app.app_context():
            db.engine.dispose()
        drop_sandbox(engine, schema, REDIS_URL, prefix)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
