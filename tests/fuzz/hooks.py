"""Schemathesis hooks (``SCHEMATHESIS_HOOKS``): values for the formats the services' documents name.

``iana-time-zone`` and ``mobile`` are what ``shared.fields.TimeZone`` and ``MobileNumber`` document; a random
string is rarely either, so positive cases draw from real ones (JSON Schema cannot list what libphonenumber
accepts, and 600 zone names as an enum made the coverage phase try each one).
"""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

from shared.timeutil import time_zone_names

# Mobiles phonenumbers accepts as SMS-capable, in the forms the API takes (E.164 and US national).
MOBILES = ("+14155552671", "+447400123456", "+33612345678", "(415) 555-2671", "+61412345678")

schemathesis.openapi.format("iana-time-zone", st.sampled_from(time_zone_names()))
schemathesis.openapi.format("mobile", st.sampled_from(MOBILES))
