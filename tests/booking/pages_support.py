"""Reading the booking pages in tests: hidden fields, links and form actions out of the HTML."""

from __future__ import annotations

import html
import re
from typing import Any

from flask.testing import FlaskClient


def hidden(page: str, name: str) -> str:
    """The value of the hidden input ``name``."""
    match = re.search(rf'<input type="hidden" name="{re.escape(name)}" value="([^"]*)"', page)
    assert match, f"no hidden field {name}"
    return html.unescape(match.group(1))


def form_action(page: str) -> str:
    """The action of the page's POST form."""
    match = re.search(r'<form method="post" action="([^"]+)"', page)
    assert match, "no POST form"
    return html.unescape(match.group(1))


def links(page: str, css_class: str) -> list[str]:
    """The hrefs of links with ``css_class``."""
    return [html.unescape(h) for h in re.findall(rf'class="{css_class}[^"]*" href="([^"]+)"', page)]


def text(page: str) -> str:
    """The page's visible text, whitespace collapsed."""
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def submit(client: FlaskClient, page: str, **fields: Any) -> Any:
    """Post the page's form with its CSRF token, start, provider and key, plus ``fields``."""
    data: dict[str, Any] = {"csrf_token": hidden(page, "csrf_token")}
    for name in ("start", "provider_id", "idempotency_key"):
        if f'name="{name}" value=' in page and f'type="hidden" name="{name}"' in page:
            data[name] = hidden(page, name)
    data.update(fields)
    return client.post(form_action(page), data=data)


PATIENT_FORM = {
    "name": "Jordan Example",
    "phone": "+44 7911 123456",
    "email": "jordan@example.com",
    "sms_consent": "yes",
}
