"""Operating the suite: the container's process launcher and the ops commands (``python -m suitectl``)."""
