"""Deployment files; ``deploy.suitectl`` is the image's entry point and the ops commands."""
