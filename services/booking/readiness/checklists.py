"""Day-before safety checklists as data: yes/no questions per reminder protocol, in each language."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema

DEFAULT_DIR = Path(__file__).parent / "checklists"
DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True)
class Item:
    """One yes/no question; "yes" is all clear."""

    key: str
    text: dict[str, str]

    def question(self, language: str) -> str:
        """The question in ``language`` (English when the checklist has no such translation)."""
        return self.text.get(language) or self.text[DEFAULT_LANGUAGE]


@dataclass(frozen=True)
class Checklist:
    """The checklist of one reminder protocol."""

    protocol: str
    version: int
    items: tuple[Item, ...]

    def flag(self, answers: dict[str, bool]) -> str:
        """``clear`` when every item is answered yes, else ``call``."""
        return "clear" if all(answers.get(item.key) is True for item in self.items) else "call"


class _ItemSchema(Schema):
    class Meta:
        unknown = RAISE

    key = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9-]{0,47}$"))
    text = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[a-z]{2}$")),
        values=fields.String(validate=validate.Length(min=1, max=300)),
        required=True,
    )

    @validates_schema
    def _english(self, data: dict[str, Any], **_: Any) -> None:
        if DEFAULT_LANGUAGE not in data.get("text", {}):
            raise ValidationError("needs the English text", field_name="text")

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Item:
        return Item(**data)


class _ChecklistSchema(Schema):
    class Meta:
        unknown = RAISE

    protocol = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9-]{0,63}$"))
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    items = fields.List(fields.Nested(_ItemSchema), required=True, validate=validate.Length(min=1, max=12))

    @validates_schema
    def _unique_keys(self, data: dict[str, Any], **_: Any) -> None:
        keys = [item.key for item in data.get("items", [])]
        if len(keys) != len(set(keys)):
            raise ValidationError("item keys must be unique", field_name="items")

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Checklist:
        return Checklist(protocol=data["protocol"], version=data["version"], items=tuple(data["items"]))


def load_checklists(directory: str | Path = "") -> dict[str, Checklist]:
    """Every ``*.toml`` checklist of ``directory`` (default: the demo clinic's), by reminder protocol."""
    folder = Path(directory) if directory else DEFAULT_DIR
    found: dict[str, Checklist] = {}
    for path in sorted(folder.glob("*.toml")):
        try:
            checklist = _ChecklistSchema().load(tomllib.loads(path.read_text(encoding="utf-8")))
        except (ValidationError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"checklist {path.name}: {exc}") from exc
        if checklist.protocol in found:
            raise ValueError(f"checklist {path.name}: protocol {checklist.protocol!r} has two checklists")
        found[checklist.protocol] = checklist
    return found
