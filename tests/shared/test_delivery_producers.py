"""Every routed event type's acknowledgement goes to the service that publishes it."""

from shared import delivery
from shared.queues import ROUTES


def test_course_changed_is_acknowledged_to_booking() -> None:
    # booking relays course.changed; an ack keyed "course" was never read, so it was redelivered forever.
    assert delivery.producer_of("course.changed") == "booking"


def test_every_routed_event_has_a_known_producer() -> None:
    # The producer names whose acks are read (booking relay, consult, notify replies, checkins scheduler).
    producers = {"booking", "notify", "consult", "checkin"}
    assert {delivery.producer_of(event_type) for event_type in ROUTES} <= producers
