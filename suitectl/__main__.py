"""``python -m suitectl``: the container image's entry point."""

from suitectl.cli import main

main()
