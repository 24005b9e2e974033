"""The baseline: a bare Flask endpoint, served the same way as the services."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/")
def index():  # type: ignore[no-untyped-def]
    return jsonify(ok=True)


@app.post("/")
def post():  # type: ignore[no-untyped-def]
    return jsonify(ok=True), 201
