"""Run benchmarks: ``python -m tests.bench`` (all) or ``python -m tests.bench booking notify``."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import tests.bench


def main(argv: list[str]) -> int:
    available = sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules(tests.bench.__path__)
        if m.name.startswith("bench_")
    )
    chosen = argv or available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        print(f"unknown benchmarks {unknown}; available: {available}", file=sys.stderr)
        return 2
    for name in chosen:
        print(f"\n=== benchmark: {name} ===", flush=True)
        importlib.import_module(f"tests.bench.bench_{name}").run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
