"""The image's Dockerfile: hadolint's rules, and the structure the runbook promises (no Docker engine runs here)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.manifests import DEPLOY, ROOT

DOCKERFILE = DEPLOY / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


@dataclass(frozen=True)
class Instruction:
    stage: str
    keyword: str
    args: str


def parse(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined, each tagged with its stage's name."""
    logical: list[str] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        logical.append(buffer + line)
        buffer = ""
    instructions, stage = [], ""
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.search(r"\bAS\s+(\S+)", args, re.IGNORECASE)
            stage = match.group(1) if match else args
        instructions.append(Instruction(stage, keyword, args.strip()))
    return instructions


INSTRUCTIONS = parse(DOCKERFILE.read_text())
FINAL = INSTRUCTIONS[-1].stage


def _final(keyword: str) -> list[Instruction]:
    return [i for i in INSTRUCTIONS if i.stage == FINAL and i.keyword == keyword]


def test_hadolint_finds_nothing() -> None:
    completed = subprocess.run(
        [str(HADOLINT), "--format", "json", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert json.loads(completed.stdout or "[]") == []
    assert completed.returncode == 0, completed.stderr


def test_hadolint_is_a_real_linter_here(tmp_path: Path) -> None:
    # The check above means something only if hadolint flags what it should.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install flask\n")
    completed = subprocess.run(
        [str(HADOLINT), "--format", "json", str(bad)], capture_output=True, text=True, check=False
    )
    codes = {finding["code"] for finding in json.loads(completed.stdout)}
    assert {"DL3007", "DL3013"} <= codes


def test_every_base_image_is_pinned_to_a_release() -> None:
    bases = [i.args.split()[0] for i in INSTRUCTIONS if i.keyword == "FROM"]
    assert bases
    for base in bases:
        name, _, tag = base.partition(":")
        assert name in {"python", "node"}, base
        # A full version (3.11.14, 20.20.2), never latest or a floating major.
        assert re.match(r"^\d+\.\d+\.\d+-", tag), f"{base} is not pinned to a patch release"
    assert {b for b in bases if b.startswith("python:")} == {"python:3.11.14-slim-bookworm"}


def test_the_runtime_image_runs_as_a_numeric_non_root_user_with_our_entry_point() -> None:
    users = _final("USER")
    assert users, "the final stage sets no USER"
    uid = users[-1].args.split(":")[0]
    assert uid.isdigit()
    assert int(uid) >= 1000
    assert json.loads(_final("ENTRYPOINT")[-1].args) == ["python", "-m", "deploy.suitectl"]
    # Nothing after USER switches back to root or installs anything.
    after_user = INSTRUCTIONS[INSTRUCTIONS.index(users[-1]) + 1 :]
    assert all(i.keyword not in {"RUN", "USER"} for i in after_user)


def test_python_packages_come_only_from_the_pinned_lock_file() -> None:
    pip_runs = [i for i in INSTRUCTIONS if i.keyword == "RUN" and "pip install" in i.args]
    assert pip_runs
    for run in pip_runs:
        for command in run.args.split("&&"):
            words = shlex.split(command)
            if "install" not in words:
                continue
            assert "--no-deps" in words, command
            assert words[words.index("-r") + 1] == "/tmp/requirements.txt", command
            # No package named on the command line, only the lock file.
            named = [w for w in words[words.index("install") + 1 :] if not w.startswith("-")]
            assert named == ["/tmp/requirements.txt"], command
    copies = [i.args for i in INSTRUCTIONS if i.keyword == "COPY" and "requirements" in i.args]
    assert copies == ["requirements/main.txt /tmp/requirements.txt"]


def test_npm_installs_runtime_packages_only_from_the_lock_file() -> None:
    npm = [i.args for i in INSTRUCTIONS if i.keyword == "RUN" and "npm" in i.args]
    assert npm == ["npm ci --omit=dev --ignore-scripts --no-audit --no-fund"]


def _copies(stage_of_copy: str | None = None) -> list[tuple[str | None, list[str], str]]:
    """(from stage or None for the build context, sources, destination) of every COPY (of one stage)."""
    found = []
    for i in INSTRUCTIONS:
        if i.keyword != "COPY" or stage_of_copy not in (None, i.stage):
            continue
        words = i.args.split()
        stage = None
        flags = [w for w in words if w.startswith("--")]
        for flag in flags:
            if flag.startswith("--from="):
                stage = flag.removeprefix("--from=")
        paths = [w for w in words if not w.startswith("--")]
        found.append((stage, paths[:-1], paths[-1]))
    return found


def test_everything_copied_from_the_context_exists_and_is_not_ignored() -> None:
    ignored = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for stage, sources, _ in _copies():
        if stage is not None:
            continue
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            top = source.rstrip("/").split("/")[0]
            assert top not in ignored, f"COPY {source}: excluded by Dockerfile.dockerignore"


def test_the_runtime_image_holds_every_package_the_processes_import() -> None:
    copied = {dest.rstrip("/") for stage, _, dest in _copies() if stage is None}
    for package in ("shared", "services", "deploy/suitectl", "deploy/__init__.py"):
        assert package in copied
    assert "deploy/gunicorn.conf.py" in copied


def test_the_video_sdk_the_join_page_serves_is_copied_from_the_node_stage() -> None:
    node = [(stage, sources, dest) for stage, sources, dest in _copies() if stage == "node-parts"]
    assert node == [
        (
            "node-parts",
            ["/build/node_modules/twilio-video/dist/twilio-video.min.js"],
            "services/consult/static/vendor/twilio-video.min.js",
        )
    ]
    # The file npm ci puts there (our own node_modules comes from the same lock file).
    assert (ROOT / "node_modules/twilio-video/dist/twilio-video.min.js").is_file()
    from services.consult import pages

    assert pages.sdk_path(str(ROOT / "services/consult")) == ROOT / node[0][2]


@pytest.mark.parametrize("variable", ["SUITE_ENV=production", "HOST=0.0.0.0", "PYTHONDONTWRITEBYTECODE=1"])
def test_the_runtime_defaults(variable: str) -> None:
    env = " ".join(i.args for i in _final("ENV"))
    assert variable in env
