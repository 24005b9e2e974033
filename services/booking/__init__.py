"""The booking service: providers, appointment types, availability, slots, bookings and their outbox."""

from services.booking.app import create_app

__all__ = ["create_app"]
