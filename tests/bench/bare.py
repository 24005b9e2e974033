"""The baselines: a bare Flask endpoint, served the same way as the services, and two database floors.

``POST /db`` is the floor under booking creation: it sends ``BARE_STATEMENTS`` trivial statements in one
transaction to ``BARE_DATABASE_URL``, through the same engine settings as the services (``shared.db``), and does
nothing else. What a booking costs beyond it is the booking's own work: parsing, checks, real inserts, events.

``POST /db/writes`` sends a booking's own statements (``BARE_REPLAY``: the SQL and parameters one booking sent,
pickled by the booking bench) in one transaction through the driver, each time with new ids, a new patient's
address, the times moved by a random offset and one of ``BARE_PROVIDERS``: what the database itself does for a booking, without the app.
"""

import os
import pickle
import random
import uuid
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy import text

from shared.db import Database

app = Flask(__name__)
_SELECT_ONE = text("SELECT 1")


@cache
def _database() -> Database:
    return Database(os.environ["BARE_DATABASE_URL"])


@app.get("/")
def index() -> Response:
    return jsonify(ok=True)


@app.post("/")
def post() -> tuple[Response, int]:
    return jsonify(ok=True), 201


@app.post("/db")
def round_trips() -> tuple[Response, int]:
    with _database().engine.begin() as connection:
        for _ in range(int(os.environ["BARE_STATEMENTS"])):
            connection.execute(_SELECT_ONE).scalar_one()
    return jsonify(ok=True), 201


@cache
def _recorded() -> tuple[list[tuple[str, dict[str, Any]]], list[int]]:
    with open(os.environ["BARE_REPLAY"], "rb") as handle:
        statements = pickle.load(handle)  # written by the booking bench, in its own temporary directory
    return statements, [int(p) for p in os.environ["BARE_PROVIDERS"].split(",")]


def _fresh(
    name: str, value: Any, ids: dict[uuid.UUID, uuid.UUID], shift: timedelta, provider: int, email: str
) -> Any:
    if name.startswith("email"):
        return email  # a new patient each time, as the booking bench's bodies are (the lookup finds none)
    if isinstance(value, uuid.UUID):
        return ids.setdefault(value, uuid.uuid4())
    if isinstance(value, datetime):
        return value + shift  # claims stay apart: (provider, at) is their key
    if "provider" in name and isinstance(value, int):
        return provider
    return value


@app.post("/db/writes")
def writes() -> tuple[Response, int]:
    statements, providers = _recorded()
    ids: dict[uuid.UUID, uuid.UUID] = {}
    shift = timedelta(microseconds=random.randrange(-(10**14), 10**14))  # about three years either way
    provider = random.choice(providers)
    email = f"{uuid.uuid4().hex}@floor.example"
    with _database().engine.begin() as connection:
        for sql, parameters in statements:
            fresh = {k: _fresh(k, v, ids, shift, provider, email) for k, v in parameters.items()}
            connection.exec_driver_sql(sql, fresh)
    return jsonify(ok=True), 201
