"""Readers of the deploy files for the tests: the Procfile, compose.yaml, the Kubernetes base, the settings."""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from deploy.suitectl.dashboard import DashboardConfig
from services.booking.config import BookingConfig
from services.checkins.config import CheckinsConfig
from services.consult.config import ConsultConfig
from services.notify.config import NotifyConfig

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

# Read by the process runner or the image, not by a service's config: gunicorn's address and worker count.
PROCESS_VARIABLES = frozenset({"HOST", "PORT", "WEB_CONCURRENCY"})


def procfile() -> dict[str, list[str]]:
    """Each Procfile process and its command, without the leading VAR=value assignments."""
    processes = {}
    for line in (DEPLOY / "Procfile").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, command = line.split(":", 1)
        words = shlex.split(command)
        while words and "=" in words[0] and not words[0].startswith("-"):
            words.pop(0)
        processes[name.strip()] = words
    return processes


def compose() -> dict[str, Any]:
    """deploy/compose.yaml, with YAML merge keys resolved."""
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return loaded


# Files beside the base that an overlay copies from; they are not applied as they are.
NOT_APPLIED = ("secret.template.yaml", "ingress.example.yaml")


def k8s_documents(include_template: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """Every (file name, resource) of the kustomization's resources (and the template and example if asked)."""
    names = list(kustomization()["resources"])
    if include_template:
        names.extend(NOT_APPLIED)
    return [
        (name, doc)
        for name in names
        for doc in yaml.safe_load_all((K8S / name).read_text())
        if doc is not None
    ]


def of_kind(kind: str, include_template: bool = False) -> dict[str, dict[str, Any]]:
    """Resources of ``kind`` by name."""
    return {doc["metadata"]["name"]: doc for _, doc in k8s_documents(include_template) if doc["kind"] == kind}


def known_settings() -> set[str]:
    """Every environment variable a config class of the suite reads."""
    names: set[str] = set()
    for cls in (BookingConfig, NotifyConfig, ConsultConfig, CheckinsConfig, DashboardConfig):
        names.update(f.metadata["env"] for f in dataclasses.fields(cls) if "env" in f.metadata)
    return names


_VARIABLE = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")


def env_file(path: Path) -> dict[str, str]:
    """The ``KEY=value`` lines of a Compose ``.env`` file."""
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return {line.split("=", 1)[0]: line.split("=", 1)[1] for line in lines}


def compose_environment(service: str, dotenv: dict[str, str]) -> dict[str, str]:
    """The environment Compose gives ``service``, interpolated from ``dotenv`` as ``docker compose`` does."""

    def value(match: re.Match[str]) -> str:
        name, kind, text = match.groups()
        if dotenv.get(name):
            return dotenv[name]
        if kind == "?":
            raise KeyError(f"{service}: {name} is required ({text})")
        return text if kind == "-" else ""

    return {
        key: _VARIABLE.sub(value, str(raw))
        for key, raw in compose()["services"][service]["environment"].items()
    }
