"""The JSON API under /api/v1, described at /api/openapi.json (docs UI at /api/swagger).

It calls the same services as the pages. Authentication: the browser's session cookie plus an
X-CSRFToken header for state changes, or `Authorization: Bearer <token>`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from flask_login import current_user
from flask_openapi3 import APIBlueprint, OpenAPI, Tag
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from clinic.auth.permissions import requires


def _as_utc(value: datetime) -> datetime:
    # The UTC column type already hands back aware UTC values; this keeps the promise for anything else.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]
"""A datetime that leaves the API as an ISO 8601 string in UTC (`2026-03-01T14:05:00Z`)."""


class Out(BaseModel):
    """Base of the response models: read from ORM rows or dataclasses by attribute."""

    model_config = ConfigDict(from_attributes=True)


class ErrorOut(BaseModel):
    """Every 4xx answer: `fields` maps each bad input field to what is wrong with it."""

    error: str
    message: str
    fields: dict[str, str] | None = None
    login_url: str | None = Field(default=None, description="Where to sign in again after an idle lock")


def dump(model: type[BaseModel], obj: Any, status: int = 200) -> tuple[dict, int]:
    """`obj` (a row, a dataclass or a dict) as `model`, ready for Flask to send as JSON."""
    return model.model_validate(obj, from_attributes=True).model_dump(mode="json"), status


SECURITY = [{"bearer": []}, {"session": []}]
ERRORS: dict[Any, Any] = {401: ErrorOut, 403: ErrorOut, 422: ErrorOut}
api = APIBlueprint("api", __name__, url_prefix="/api/v1", abp_security=SECURITY, abp_responses=ERRORS)
account_tag = Tag(name="account", description="Who is calling")


class Me(BaseModel):
    id: int
    username: str
    full_name: str
    roles: list[str]
    site_ids: list[int]


@api.get("/me", tags=[account_tag], responses={200: Me})
@requires("account.self")
def me():
    """The signed-in staff user, with roles and sites."""
    return Me(id=current_user.id, username=current_user.username, full_name=current_user.full_name,
              roles=sorted(current_user.roles), site_ids=sorted(current_user.site_ids)).model_dump()


def register_api(app: OpenAPI) -> None:
    from clinic.api import monitoring, patients, planning, reports, scheduling, staff  # noqa: F401  (register routes)

    # Swagger UI otherwise sends the document's address to validator.swagger.io for a badge.
    app.config.setdefault("SWAGGER_CONFIG", {"validatorUrl": None})
    app.register_api(api)
