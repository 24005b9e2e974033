"""Gunicorn settings shared by the three web services (override any of them with GUNICORN_CMD_ARGS)."""

import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
timeout = 30
graceful_timeout = 20
keepalive = 5
# No access log: request paths carry signed patient tokens. The apps log each request by route template.
accesslog = None
errorlog = "-"
# Each worker builds its own app (and database pool) after the fork.
preload_app = False
# Gunicorn's control socket defaults to one fixed path per user; several services on one host would share it.
control_socket_disable = True
