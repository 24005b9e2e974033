"""SMS opt-outs: inbound STOP/START/HELP keywords and carrier error 21610 keep one record per number."""

from __future__ import annotations

import logging
import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.notify.models import OptOut
from shared.db import dialect_insert
from shared.timeutil import utcnow

log = logging.getLogger(__name__)

STOP = "STOP"
START = "START"
HELP = "HELP"
# Twilio's default opt-out, opt-in and help keywords (a whole message, any case, surrounding spaces and
# punctuation ignored), which the carrier-level handling honours whatever this service does.
KEYWORDS = {
    **dict.fromkeys(("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"), STOP),
    **dict.fromkeys(("START", "YES", "UNSTOP", "OPTIN"), START),
    **dict.fromkeys(("HELP", "INFO"), HELP),
}


def keyword(body: str, opt_out_type: str | None = None) -> str | None:
    """STOP, START or HELP for an inbound message, or None; Twilio's own ``OptOutType`` wins when present."""
    if opt_out_type and opt_out_type.upper() in (STOP, START, HELP):
        return opt_out_type.upper()
    word = re.sub(r"[^A-Za-z]", "", body).upper()
    return KEYWORDS.get(word)


def is_opted_out(session: Session, phone: str) -> bool:
    """Whether ``phone`` asked for no more SMS."""
    row = session.get(OptOut, phone)
    return bool(row and row.opted_out)


def opted_out_among(session: Session, phones: set[str]) -> set[str]:
    """Which of ``phones`` asked for no more SMS."""
    if not phones:
        return set()
    return set(
        session.scalars(select(OptOut.phone).where(OptOut.phone.in_(phones), OptOut.opted_out.is_(True)))
    )


def set_opt_out(
    session: Session, phone: str, *, opted_out: bool, source: str, now: datetime | None = None
) -> None:
    """Record that ``phone`` opted out (or back in), and why."""
    now = now or utcnow()
    values = {"opted_out": opted_out, "source": source, "changed_at": now}
    session.execute(
        dialect_insert(session, OptOut)
        .values(phone=phone, **values)
        .on_conflict_do_update(index_elements=["phone"], set_=values)
    )
    log.info("sms opt-out recorded", extra={"opted_out": opted_out, "source": source})
