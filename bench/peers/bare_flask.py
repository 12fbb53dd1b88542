"""The peer of bench/http.py: a bare Flask app under the same gunicorn worker class as the product.

`/healthz` answers a constant JSON body; `/redis-pg` does what `GET /api/v1/auth/me` must at least do (one Redis GET,
one PostgreSQL SELECT by primary key) with nothing else around it. Patched like wsgi.py: the worker class's
monkey-patching and a green psycopg2, so the comparison is of the code, not of the I/O model.
"""

import os

if os.environ.get("ASYNC_MODE", "eventlet") == "eventlet":
    from psycogreen.eventlet import patch_psycopg
else:
    from psycogreen.gevent import patch_psycopg
patch_psycopg()

import redis  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from flask import Flask, jsonify  # noqa: E402

app = Flask(__name__)
engine = sa.create_engine(os.environ["DATABASE_URL"], pool_size=10)
cache = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
USER_ID = int(os.environ.get("BENCH_USER_ID", "1"))


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")


@app.get("/redis-pg")
def redis_pg():
    cache.get("bench:peer:key")
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT id, email, name, created_at FROM users WHERE id = :id"),
                           {"id": USER_ID}).one()
    return jsonify(id=row.id, email=row.email, name=row.name, created_at=row.created_at.isoformat())
