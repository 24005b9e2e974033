"""The container's process launcher and the ops commands (``python -m deploy.suitectl``)."""
