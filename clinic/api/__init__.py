"""The JSON API under /api/v1, described at /api/openapi.json (docs UI at /api/swagger).

It calls the same services as the pages. Authentication: the browser's session cookie plus an
X-CSRFToken header for state changes, or `Authorization: Bearer <token>`.
"""

from __future__ import annotations

from flask_login import current_user
from flask_openapi3 import APIBlueprint, OpenAPI, Tag
from pydantic import BaseModel

from clinic.auth.permissions import requires

SECURITY = [{"bearer": []}, {"session": []}]
api = APIBlueprint("api", __name__, url_prefix="/api/v1", abp_security=SECURITY)
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
    from clinic.api import patients, staff  # noqa: F401  (register their routes on `api`)

    app.register_api(api)
