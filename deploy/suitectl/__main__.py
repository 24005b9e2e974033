"""``python -m deploy.suitectl``: the container image's entry point."""

from deploy.suitectl.cli import main

main()
