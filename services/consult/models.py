"""Tables of the consult service."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, MetaData, String, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import GUID, NAMING_CONVENTION, BigIntKey, UTCDateTime
from shared.delivery import DeliveryMixin
from shared.inbox import ProcessedEventMixin
from shared.timeutil import utcnow

CONFIRMED = "confirmed"
CANCELLED = "cancelled"
IN_PROGRESS = "in-progress"
COMPLETED = "completed"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ProcessedEvent(ProcessedEventMixin, Base):
    """Events this service has handled, so a redelivered job changes nothing."""

    __tablename__ = "processed_events"


class LinksDelivery(DeliveryMixin, Base):
    """Whether notify has acknowledged each ``consult.links_ready`` event (shared/delivery.py)."""

    __tablename__ = "event_deliveries"


class Consultation(Base):
    """A video booking as the consult service knows it (its latest version)."""

    __tablename__ = "consultations"
    __table_args__ = (
        CheckConstraint("status IN ('confirmed', 'cancelled')", name="status"),
        CheckConstraint("opens_at <= start_at AND start_at < end_at AND end_at <= closes_at", name="window"),
        # The sweeper's question: which current links are not on the queue yet?
        Index("ix_consultations_links_pending", "links_published_at", "closes_at"),
        # The sweeper's prune: consultations whose window closed before a cutoff (services/consult/sweep.py).
        Index("ix_consultations_closes_at", "closes_at"),
    )

    booking_id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    patient_time_zone: Mapped[str] = mapped_column(String(64))
    provider_time_zone: Mapped[str] = mapped_column(String(64))
    # Random, per booking: participants' video identities are "<role>-<key>", never a name.
    participant_key: Mapped[str] = mapped_column(String(32))
    # Random, per version: every join link of the version carries it, so a signing key and the booking's id
    # cannot make one. Replaced with the version. NULL only on a row an older release created.
    link_secret: Mapped[str | None] = mapped_column(String(64))
    correlation_id: Mapped[str] = mapped_column(String(64), default="")
    # The consult.links_ready event of the current version: its id is kept so a re-send is the same event.
    links_event_id: Mapped[uuid.UUID | None] = mapped_column(GUID)
    links_issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    links_published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Room(Base):
    """The video room of one booking version, and when it must be completed."""

    __tablename__ = "rooms"
    __table_args__ = (
        UniqueConstraint("booking_id", "version"),
        CheckConstraint("status IN ('in-progress', 'completed')", name="status"),
        Index("ix_rooms_due", "status", "complete_after"),
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    booking_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("consultations.booking_id"))
    version: Mapped[int] = mapped_column(Integer)
    unique_name: Mapped[str] = mapped_column(String(128), unique=True)
    provider: Mapped[str] = mapped_column(String(16))
    sid: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=IN_PROGRESS)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the provider last confirmed the room is open (a join re-checks a stale answer on request).
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The window's close, or the moment the booking moved or was cancelled: the sweeper completes it then.
    complete_after: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LocalVideoRoom(Base):
    """A room of the local video provider (what Twilio keeps for a real room)."""

    __tablename__ = "local_video_rooms"
    __table_args__ = (
        CheckConstraint("status IN ('in-progress', 'completed')", name="status"),
        # Like Twilio: a unique name belongs to at most one in-progress room.
        Index(
            "uq_local_video_rooms_live_name",
            "unique_name",
            unique=True,
            sqlite_where=text("status = 'in-progress'"),
            postgresql_where=text("status = 'in-progress'"),
        ),
    )

    sid: Mapped[str] = mapped_column(String(34), primary_key=True)
    unique_name: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default=IN_PROGRESS)
    max_participants: Mapped[int] = mapped_column(Integer)
    empty_room_timeout: Mapped[int] = mapped_column(Integer)
    unused_room_timeout: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LocalVideoParticipant(Base):
    """Someone present in a local room, as long as their page keeps sending heartbeats."""

    __tablename__ = "local_video_participants"

    room_sid: Mapped[str] = mapped_column(
        String(34), ForeignKey("local_video_rooms.sid", ondelete="CASCADE"), primary_key=True
    )
    identity: Mapped[str] = mapped_column(String(128), primary_key=True)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
