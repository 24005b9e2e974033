"""Every process of the suite by its Procfile name, and the one-off tasks, as the commands that run them.

The image runs ``python -m deploy.suitectl run NAME``, Compose and Kubernetes name the same processes, and
tests/deploy checks that deploy/Procfile, this table, compose.yaml and the Kubernetes Deployments agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
SERVICES = ("booking", "notify", "consult", "checkins")

# How a process may be scaled.
WEB = "web"  # stateless HTTP: scale by replicas behind a load balancer
WORKER = "worker"  # RQ consumers: scale by count per queue
SINGLETON = "singleton"  # one is enough; a second one running for a while (a rollout) stays correct
TOOL = "tool"  # operations' own processes (the queue dashboard)


@dataclass(frozen=True)
class Process:
    """A long-running process."""

    name: str
    service: str
    kind: str
    argv: tuple[str, ...]
    doc: str

    @property
    def serves_http(self) -> bool:
        """Whether it answers HTTP on PORT (/healthz, /metrics), not only /metrics on METRICS_PORT."""
        return self.kind in {WEB, TOOL}


def _web(service: str, doc: str) -> Process:
    return Process(
        name=service,
        service=service,
        kind=WEB,
        argv=("gunicorn", "-c", str(GUNICORN_CONF), f"services.{service}:create_app()"),
        doc=doc,
    )


def _flask(name: str, service: str, kind: str, command: str, doc: str) -> Process:
    return Process(
        name=name,
        service=service,
        kind=kind,
        argv=("flask", "--app", f"services.{service}", command),
        doc=doc,
    )


PROCESSES: dict[str, Process] = {
    p.name: p
    for p in (
        _web("booking", "booking API and the patients' booking pages"),
        _flask(
            "relay",
            "booking",
            SINGLETON,
            "relay",
            "moves committed booking events from the outbox to the queues (SKIP LOCKED: two are safe)",
        ),
        _flask(
            "booking-worker",
            "booking",
            WORKER,
            "worker",
            "applies notify's SMS reply events to bookings (attendance)",
        ),
        _web("notify", "notify API, Twilio webhooks and the message outbox page"),
        _flask(
            "notify-worker",
            "notify",
            WORKER,
            "worker",
            "urgent sends, then booking and consult events, then routine sends "
            "(notify-urgent, notify, notify-send)",
        ),
        _flask(
            "notify-dispatcher",
            "notify",
            SINGLETON,
            "dispatcher",
            "queues due messages, repairs those Redis or a killed worker lost (SKIP LOCKED: two are safe)",
        ),
        _web("consult", "consult API and the video join pages"),
        _flask("consult-worker", "consult", WORKER, "worker", "handles booking events for consult"),
        _flask(
            "consult-sweeper",
            "consult",
            SINGLETON,
            "sweep",
            "completes rooms whose time is up, re-sends unpublished join links (two are harmless)",
        ),
        _web("checkins", "check-in pages (patients), alert and timeline pages (staff), the checkins API"),
        _flask(
            "checkins-worker", "checkins", WORKER, "worker", "handles booking events and SMS rating replies"
        ),
        _flask(
            "checkins-scheduler",
            "checkins",
            SINGLETON,
            "scheduler",
            "sends due check-ins and safety alerts, redelivers what notify has not acknowledged",
        ),
        Process(
            name="rq-dashboard",
            service="ops",
            kind=TOOL,
            argv=("gunicorn", "-c", str(GUNICORN_CONF), "deploy.suitectl.dashboard:create_app()"),
            doc="rq-dashboard: queues, workers and failed jobs (internal only; shows job descriptions)",
        ),
    )
}

# Processes ops add themselves; deploy/Procfile (what `make run` starts) lists every other one.
NOT_IN_PROCFILE = frozenset({"rq-dashboard"})


@dataclass(frozen=True)
class Task:
    """A command that runs to completion."""

    name: str
    commands: tuple[tuple[str, ...], ...]
    doc: str


def migrate_task(services: tuple[str, ...] = SERVICES) -> Task:
    """Bring each service's database to the latest migration, one service after another."""
    return Task(
        name="migrate",
        commands=tuple(("flask", "--app", f"services.{s}", "db", "upgrade") for s in services),
        doc="apply every service's database migrations (run before a new version's processes start)",
    )


def schema_check(service: str) -> tuple[str, ...]:
    """The command that exits 0 once ``service``'s database is at the latest migration."""
    return ("flask", "--app", f"services.{service}", "db", "is-current")


def recover_queues_task(since: str) -> Task:
    """Send again what each service had put on the queues since ``since`` (after Redis lost its data)."""
    return Task(
        name="recover-queues",
        commands=(
            ("flask", "--app", "services.booking", "outbox-replay", "--since", since),
            ("flask", "--app", "services.consult", "links-replay", "--since", since),
        ),
        doc="after Redis lost its queues: every service re-sends what it published since a time",
    )


SEED_DEMO = Task(
    name="seed-demo",
    commands=(("flask", "--app", "services.booking", "seed-demo"),),
    doc="create the demo clinic (idempotent; for trying the suite, not for production)",
)
