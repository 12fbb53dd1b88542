# One image for every process of the Procfile: the default command is the web process; the worker and the release
# (migrations) run the same image with another command (see docker-compose.yml).
#
# The base is pinned to an exact release (Python 3.11.14 on Debian 12): a floating tag would change the interpreter
# and the OS under a rebuild of the same commit. Move it on purpose, with the tests. Pin its digest too where your
# registry is reachable: `FROM python:3.11.14-slim-bookworm@sha256:...`.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    APP_ENV=production \
    PORT=8000

WORKDIR /app

# Dependencies first, in their own layer: a code change does not reinstall them. psycopg2-binary, argon2-cffi,
# eventlet and gevent ship manylinux wheels, so no compiler or libpq-dev is needed.
COPY requirements.txt .
RUN pip install -r requirements.txt

# The code belongs to root and is read-only to the app; only instance/ (the SQLite fallback) is the app's. The uid is
# numeric in USER so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd (deploy/k8s uses the same).
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent app \
    && mkdir -p /app/instance \
    && chown 10001:10001 /app/instance
COPY --chown=root:root . .
USER 10001:10001

EXPOSE 8000

# /healthz touches no dependency: it says the process serves. No curl in a slim image; Python is there anyway.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

# Exec form: gunicorn is PID 1 and receives SIGTERM itself (graceful shutdown), no shell in between.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
