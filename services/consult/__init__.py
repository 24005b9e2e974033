"""The consult service: Consultation rooms and join links for video visits."""

from services.consult.app import create_app

__all__ = ["create_app"]
