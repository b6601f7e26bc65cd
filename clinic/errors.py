"""Errors a service raises for the shell to turn into a 4xx with a message a person understands."""

from __future__ import annotations

from pydantic import ValidationError


class ClinicError(Exception):
    status = 400

    def __init__(self, message: str, *, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}

    def to_json(self) -> dict:
        body: dict = {"error": type(self).__name__, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return body


class InvalidInput(ClinicError):
    """Input that cannot be accepted; `fields` maps each field name to what is wrong with it."""

    status = 422

    @classmethod
    def from_validation(cls, err: ValidationError) -> InvalidInput:
        fields: dict[str, str] = {}
        for e in err.errors():
            name = ".".join(str(p) for p in e["loc"]) or "__all__"
            fields.setdefault(name, plain_message(e))
        names = ", ".join(_field_words(k) for k in fields)
        return cls(f"Please check: {names}.", fields=fields)


def _field_words(name: str) -> str:
    """A field name as words: "protocol_id" → "Protocol", "items.3" → "Items 3"."""
    words = name.removesuffix("_id").replace("_", " ").replace(".", " ").strip()
    return words[:1].upper() + words[1:]


def plain_message(e: dict) -> str:
    """A pydantic error in the words a nurse would use."""
    kind, ctx, msg = e["type"], e.get("ctx") or {}, e["msg"].removeprefix("Value error, ")
    if kind == "missing" or (kind in ("string_type", "int_type", "float_type", "date_type") and e.get("input") is None):
        return "This is required."
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "This is required."
    if msg.startswith("value is not a valid email address"):
        return "Enter a valid email address, like name@example.org."
    plain = {
        "date_parsing": "Enter a date like 2026-11-23.",
        "date_from_datetime_parsing": "Enter a date like 2026-11-23.",
        "date_from_datetime_inexact": "Enter a date like 2026-11-23.",
        "datetime_parsing": "Enter a date and time like 2026-11-23T14:30:00Z.",
        "datetime_from_date_parsing": "Enter a date and time like 2026-11-23T14:30:00Z.",
        "time_parsing": "Enter a time like 14:30.",
        "int_parsing": "Enter a whole number.",
        "int_from_float": "Enter a whole number.",
        "float_parsing": "Enter a number.",
        "bool_parsing": "Answer yes or no.",
        "string_pattern_mismatch": "Contains characters that are not allowed here.",
        "extra_forbidden": "This is not a field of this form.",
        "json_invalid": "The request body is not valid JSON.",
        "list_type": "Send a list.",
    }
    if kind in plain:
        return plain[kind]
    bounds = {"greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "more than"),
              "less_than_equal": ("le", "at most"), "less_than": ("lt", "less than")}
    if kind in bounds:
        key, words = bounds[kind]
        return f"Must be {words} {ctx.get(key)}."
    if kind == "string_too_long":
        return f"Use at most {ctx.get('max_length')} characters."
    if kind == "string_too_short":
        return f"Use at least {ctx.get('min_length')} characters."
    return msg[:1].upper() + msg[1:] + ("" if msg.endswith(".") else ".")


class NotFound(ClinicError):
    status = 404


class Conflict(ClinicError):
    """A duplicate, or a change that clashes with what is already saved."""

    status = 409


class Forbidden(ClinicError):
    status = 403


class TooManyAttempts(ClinicError):
    status = 429
