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
            msg = e["msg"].removeprefix("Value error, ")
            fields.setdefault(name, msg)
        summary = "; ".join(f"{k}: {v}" for k, v in fields.items())
        return cls(f"Please correct: {summary}", fields=fields)


class NotFound(ClinicError):
    status = 404


class Conflict(ClinicError):
    """A duplicate, or a change that clashes with what is already saved."""

    status = 409


class Forbidden(ClinicError):
    status = 403


class TooManyAttempts(ClinicError):
    status = 429
