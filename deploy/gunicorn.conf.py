"""Gunicorn settings shared by the three web services (override any of them with GUNICORN_CMD_ARGS)."""

import os
import shutil
import tempfile

bind = [f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"]
# With METRICS_PORT set, /metrics answers only on a second listener (shared/app.py), which the public entry
# point (the ingress, the TLS proxy) never routes to.
if os.environ.get("METRICS_PORT", "0") not in ("", "0"):
    bind.append(f"{os.environ.get('METRICS_HOST', '127.0.0.1')}:{os.environ['METRICS_PORT']}")
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

# Prometheus multiprocess mode: each worker writes its metrics to files in one directory and /metrics adds
# them up, so a scrape sees the whole server and not one worker at random. The directory must be empty at
# start (stale files from another run would be added in); it is private to this server unless
# PROMETHEUS_MULTIPROC_DIR names one (a writable emptyDir in Kubernetes). Set before any worker imports
# prometheus_client, which picks its storage at import time.
_own_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="suite-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_starting(server: object) -> None:
    """Start from an empty metrics directory."""
    os.makedirs(_metrics_dir, exist_ok=True)
    for name in os.listdir(_metrics_dir):
        if name.endswith(".db"):
            os.unlink(os.path.join(_metrics_dir, name))


def child_exit(server: object, worker: object) -> None:
    """Drop a dead worker's live gauges (its counters stay: they were counted)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]


def on_exit(server: object) -> None:
    """Remove the metrics directory this server made for itself."""
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
