"""gunicorn settings for the web process (`gunicorn -c gunicorn.conf.py wsgi:app`).

One worker per process: Socket.IO long-polling needs every request of a session on the same process, and gunicorn
has no sticky sessions. Scale by running more processes (each its own gunicorn) behind a sticky proxy; the Redis
message queue carries events between them.
"""

import os

# The worker class follows ASYNC_MODE (eventlet by default, gevent the drop-in alternative); wsgi.py patches to match.
_ASYNC_MODE = os.environ.setdefault("ASYNC_MODE", "eventlet")
worker_class = {"eventlet": "eventlet", "gevent": "gevent"}[_ASYNC_MODE]
workers = 1
bind = f"{os.environ.get('BIND_HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
# Each connected socket holds one connection; the defaults (1,000) would cap a process far below its capacity.
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "10000"))
# A deep accept queue absorbs reconnect storms instead of turning them into 1 s SYN retries.
backlog = int(os.environ.get("GUNICORN_BACKLOG", "2048"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "20"))
keepalive = 5
# The app logs each request itself as JSON; gunicorn's own access log would duplicate it.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
