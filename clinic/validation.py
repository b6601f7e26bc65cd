"""Small building blocks for input models shared by the pages and the API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import AfterValidator


def choice(vocabulary: Mapping[str, str] | tuple[str, ...], message: str | None = None):
    """A `str` field that must be one of `vocabulary`'s codes (the message lists them)."""
    allowed = tuple(vocabulary)

    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(message or f"choose one of: {', '.join(allowed)}")
        return value

    return Annotated[str, AfterValidator(check)]
