"""Debian's Chromium driven by Playwright (its own browser download is not available here), and the axe-core check
every page the browser tests open goes through (why it is strict: docs/booking-pages.md, "Accessibility checks")."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.0, 2.1 and 2.2 at levels A and AA; axe leaves its experimental and deprecated rules out of a selection.
WCAG = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa")


@dataclass(frozen=True)
class Rules:
    """The axe rules a document is held to: those tagged ``tags``, less ``off``."""

    tags: tuple[str, ...]
    off: tuple[str, ...] = ()


# A page also follows axe's best practices (landmarks, one h1, heading order). An email's HTML is one message,
# not a site: WCAG only, and nothing repeated across pages to bypass (2.4.1).
PAGE = Rules((*WCAG, "best-practice"))
EMAIL = Rules(WCAG, off=("bypass",))
# A framed document (an email in the outbox) is checked on its own URL like any other: axe cannot run inside a
# sandboxed frame, and frame-tested would only say so.
AXE_RUN = """async ([tags, off]) => {
  const rules = Object.fromEntries(['frame-tested', ...off].map((id) => [id, {enabled: false}]));
  const results = await axe.run(document, {runOnly: {type: 'tag', values: tags}, iframes: false, rules,
                                           resultTypes: ['violations', 'incomplete']});
  return {version: axe.version, violations: results.violations, incomplete: results.incomplete};
}"""
_CHECKED: set[str] = set()  # every document axe passed in this test session

# What axe-core 4.x no longer reports (it dropped its duplicate-id rules) but the HTML standard forbids, read
# from the DOM Chromium built: an id used twice, and a label, ARIA reference or in-page link to no element.
HTML_CHECK = """() => {
  const problems = [];
  const seen = new Map();
  for (const el of document.querySelectorAll('[id]')) {
    seen.set(el.id, (seen.get(el.id) || 0) + 1);
  }
  for (const [id, n] of seen) { if (n > 1) problems.push(`id "${id}" used ${n} times`); }
  for (const label of document.querySelectorAll('label[for]')) {
    const target = document.getElementById(label.htmlFor);
    if (!target || !target.matches('input, select, textarea, button, meter, output, progress')) {
      problems.push(`label for="${label.htmlFor}" names no form control`);
    }
  }
  for (const attr of ['aria-describedby', 'aria-labelledby', 'aria-controls']) {
    for (const el of document.querySelectorAll(`[${attr}]`)) {
      for (const id of el.getAttribute(attr).split(/\\s+/).filter(Boolean)) {
        if (!document.getElementById(id)) problems.push(`${attr}="${id}" names no element`);
      }
    }
  }
  for (const link of document.querySelectorAll('a[href^="#"]')) {
    const id = decodeURIComponent(link.getAttribute('href').slice(1));
    if (id && !document.getElementById(id)) problems.push(`link to #${id} finds no element`);
  }
  return problems;
}"""


def launch(playwright: Any) -> Any:
    """Launch headless Chromium from the Debian package."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def pinned_axe_version() -> str:
    """The axe-core version package.json pins (exactly: package-lock.json holds its checksum)."""
    return str(json.loads((ROOT / "package.json").read_text())["devDependencies"]["axe-core"])


def _describe(kind: str, result: dict[str, Any]) -> str:
    targets = [node["target"] for node in result["nodes"]][:3]
    # axe's own words for each node (why it failed, or why it could not decide) make a red run on another
    # machine readable without reproducing it.
    why = sorted(
        {
            check["message"]
            for node in result["nodes"][:3]
            for check in node.get("any", []) + node.get("all", []) + node.get("none", [])
        }
    )
    return f"{kind} {result['id']}: {result['help']} at {targets}" + (f" ({'; '.join(why)})" if why else "")


def no_horizontal_scroll(page: Any) -> None:
    """Nothing spills sideways at the current width."""
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def accessibility_problems(page: Any, rules: Rules = PAGE) -> list[str]:
    """What axe-core finds wrong on the page as it is now, and what it could not decide ("needs review")."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    results = page.evaluate(AXE_RUN, [list(rules.tags), list(rules.off)])
    assert results["version"] == pinned_axe_version(), "node_modules is stale: run `make install`"
    return [_describe("violation", r) for r in results["violations"]] + [
        _describe("undecided", r) for r in results["incomplete"]
    ]


def html_problems(page: Any) -> list[str]:
    """What breaks the HTML standard's rules on ids and references in the page as it is now."""
    return list(page.evaluate(HTML_CHECK))


def assert_accessible(page: Any, rules: Rules = PAGE) -> None:
    """axe-core and the id/reference check pass the page at its current size with nothing left undecided; the
    page counts as checked."""
    problems = accessibility_problems(page, rules) + html_problems(page)
    browser = page.context.browser
    where = f"{page.url} (Chromium {browser.version if browser else '?'}, axe-core {pinned_axe_version()})"
    assert not problems, where + "\n" + "\n".join(problems)
    _CHECKED.add(_document(page.url))


def _document(url: str) -> str:
    # The same page in another time zone (the booking pages' script adds the browser's ?tz=) is the same page.
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "tz"])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def record_loads(page: Any, loaded: list[str]) -> None:
    """Append to ``loaded`` every document ``page`` or one of its frames opens from now on."""
    page.on("framenavigated", lambda frame: loaded.append(_document(frame.url)))


def unchecked(loaded: list[str]) -> list[str]:
    """The documents among ``loaded`` that no :func:`assert_accessible` call has passed."""
    return sorted({url for url in loaded if url.startswith("http")} - _CHECKED)
