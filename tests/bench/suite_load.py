"""A bounded mixed load on the booking API: slot searches, bookings, reschedules and cancels.

Runs in processes of its own (``run_load``), each with a few client threads. Every thread owns a disjoint set of
providers and picks its times from their free slots, so a 409 would be a defect rather than two clients racing
for one slot; it keeps the bookings it made and their state, which the benchmark checks against what notify and
consult did. Every loop stops at its deadline; nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests

SEARCH, BOOK, RESCHEDULE, CANCEL = "slot search", "booking", "reschedule", "cancel"
# Weights of the mix: searching dominates, as on a booking page.
MIX = ((SEARCH, 55), (BOOK, 25), (RESCHEDULE, 12), (CANCEL, 8))


@dataclass
class Plan:
    """What one client thread may book: its providers' free starts and the appointment types."""

    base_url: str
    api_key: str
    providers: list[int]
    types: list[int]
    free: dict[int, list[str]]  # provider id -> free start times (ISO), in random order
    window: tuple[str, str]


@dataclass
class Outcome:
    """What one client thread did."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)
    errors: int = 0
    # booking id -> (status, version, appointment type id, provider id, start)
    bookings: dict[str, tuple[str, int, int, int, str]] = field(default_factory=dict)

    def record(self, op: str, seconds: float, status: int) -> None:
        self.samples.setdefault(op, []).append(seconds)
        by_status = self.statuses.setdefault(op, {})
        by_status[status] = by_status.get(status, 0) + 1


def _client(plan: Plan, deadline: float, seed: int) -> Outcome:
    rng = random.Random(seed)
    out = Outcome()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {plan.api_key}"
    free = {p: list(starts) for p, starts in plan.free.items()}
    confirmed: list[str] = []
    ops = [op for op, weight in MIX for _ in range(weight)]
    n = 0
    while time.monotonic() < deadline:
        n += 1
        op = rng.choice(ops)
        if op in (RESCHEDULE, CANCEL) and not confirmed:
            op = BOOK
        provider = rng.choice(plan.providers)
        if op in (BOOK, RESCHEDULE) and not free[provider]:
            op = SEARCH
        started = time.perf_counter()
        try:
            if op == SEARCH:
                answer = session.get(
                    f"{plan.base_url}/api/v1/slots",
                    params={
                        "provider_id": provider,
                        "appointment_type_id": rng.choice(plan.types),
                        "start": plan.window[0],
                        "end": plan.window[1],
                    },
                    timeout=30,
                )
            elif op == BOOK:
                start = free[provider].pop()
                type_id = rng.choice(plan.types)
                answer = session.post(
                    f"{plan.base_url}/api/v1/bookings",
                    json={
                        "provider_id": provider,
                        "appointment_type_id": type_id,
                        "start": start,
                        "patient": {
                            "name": f"Bench Patient {seed}-{n}",
                            "email": f"p{seed}-{n}@bench.example",
                            "phone": f"+1415555{rng.randrange(10000):04d}",
                            "time_zone": "America/New_York",
                            "sms_consent": rng.random() < 0.7,
                        },
                    },
                    timeout=30,
                )
                if answer.status_code == 201:
                    body = answer.json()
                    out.bookings[body["id"]] = ("confirmed", body["version"], type_id, provider, start)
                    confirmed.append(body["id"])
            elif op == RESCHEDULE:
                booking_id = rng.choice(confirmed)
                _, _, type_id, booking_provider, old_start = out.bookings[booking_id]
                if not free[booking_provider]:
                    continue
                start = free[booking_provider].pop()
                answer = session.post(
                    f"{plan.base_url}/api/v1/bookings/{booking_id}/reschedule",
                    json={"start": start},
                    timeout=30,
                )
                if answer.status_code == 200:
                    out.bookings[booking_id] = (
                        "confirmed",
                        answer.json()["version"],
                        type_id,
                        booking_provider,
                        start,
                    )
                    free[booking_provider].insert(0, old_start)
            else:
                booking_id = confirmed.pop(rng.randrange(len(confirmed)))
                answer = session.post(
                    f"{plan.base_url}/api/v1/bookings/{booking_id}/cancel", json={}, timeout=30
                )
                if answer.status_code == 200:
                    _, _, type_id, booking_provider, start = out.bookings[booking_id]
                    out.bookings[booking_id] = (
                        "cancelled",
                        answer.json()["version"],
                        type_id,
                        booking_provider,
                        start,
                    )
        except requests.RequestException:
            out.errors += 1
            continue
        out.record(op, time.perf_counter() - started, answer.status_code)
    return out


def _process(plans: list[Plan], seconds: float, seed: int, results: Any) -> None:
    deadline = time.monotonic() + seconds
    outcomes: list[Outcome] = [Outcome() for _ in plans]
    threads = [
        threading.Thread(
            target=lambda i=i, p=p: outcomes.__setitem__(i, _client(p, deadline, seed * 100 + i))
        )
        for i, p in enumerate(plans)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(outcomes)


def run_load(plans: list[Plan], *, seconds: float, processes: int) -> list[Outcome]:
    """Run ``plans`` (one per client thread) spread over ``processes`` processes for ``seconds``."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    shares = [plans[i::processes] for i in range(processes)]
    workers = [
        context.Process(target=_process, args=(share, seconds, n + 1, results))
        for n, share in enumerate(shares)
    ]
    for worker in workers:
        worker.start()
    outcomes: list[Outcome] = []
    for _ in workers:
        outcomes.extend(results.get(timeout=seconds + 120))
    for worker in workers:
        worker.join(timeout=30)
    return outcomes


def week_window(now: datetime) -> tuple[str, str]:
    """The slot-search window: the coming week."""
    return ((now + timedelta(days=1)).isoformat(), (now + timedelta(days=8)).isoformat())
