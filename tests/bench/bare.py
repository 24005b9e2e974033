"""The baselines: a bare Flask endpoint, served the same way as the services, and a database floor.

``POST /db`` is the floor under booking creation: it sends ``BARE_STATEMENTS`` trivial statements in one
transaction to ``BARE_DATABASE_URL``, through the same engine settings as the services (``shared.db``), and does
nothing else. What a booking costs beyond it is the booking's own work: parsing, checks, real inserts, events.
"""

import os
from functools import cache

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
