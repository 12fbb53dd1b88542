"""gunicorn settings of the bare Flask peer: the product's (one worker of ASYNC_MODE's class, its connection limit,
backlog and keep-alive) without its hooks or logging, so only the application code differs."""

import os

worker_class = os.environ.get("ASYNC_MODE", "eventlet")
workers = 1
bind = f"127.0.0.1:{os.environ['PEER_PORT']}"
worker_connections = 10000
backlog = 2048
keepalive = 5
control_socket_disable = True
accesslog = None
chdir = os.path.dirname(os.path.abspath(__file__))
