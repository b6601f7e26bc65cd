"""The shell shared by every blueprint: who is asking, may they, is their session still fresh,
CSRF, errors as 4xx with a message, times shown in the clinic's zone."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from flask import Flask, current_app, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, logout_user
from flask_wtf.csrf import CSRFError
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

from clinic.audit import Actor
from clinic.auth import service as auth_service
from clinic.auth.permissions import allowed, is_public, permission_of
from clinic.config import Settings
from clinic.db import get_db, utcnow
from clinic.errors import ClinicError, InvalidInput
from clinic.vocab import ROLES

log = logging.getLogger("clinic")
M = TypeVar("M", bound=BaseModel)

# Endpoints that libraries register (the OpenAPI document and its offline docs UI) and who may use them.
LIBRARY_ENDPOINT_PERMISSIONS = {
    "openapi.doc_url": "api.docs",
    "openapi.static": "api.docs",
    "openapi.openapi": "api.docs",
    "swagger.swagger": "api.docs",
    "swagger.static": "api.docs",
    "swagger.oauth2-redirect": "api.docs",
}
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class SignedInUser(UserMixin):
    def __init__(self, staff: auth_service.StaffView):
        self.staff = staff
        self.id = staff.id
        self.username = staff.username
        self.full_name = staff.full_name
        self.roles = staff.roles
        self.site_ids = staff.site_ids

    def get_id(self) -> str:
        return str(self.id)

    def can(self, permission: str) -> bool:
        return allowed(self.roles, permission)


login_manager = LoginManager()


@login_manager.user_loader
def _load_user(user_id: str) -> SignedInUser | None:
    staff = auth_service.load_staff(get_db(), int(user_id))
    return SignedInUser(staff) if staff and staff.active else None


@login_manager.request_loader
def _load_token_user(req) -> SignedInUser | None:
    header = req.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    staff = auth_service.user_for_token(get_db(), header.removeprefix("Bearer ").strip(), now=clock())
    if staff is None:
        return None
    g.auth_via = "token"
    return SignedInUser(staff)


# --- small helpers the views use -----------------------------------------------------------------


def settings() -> Settings:
    return current_app.extensions["clinic.settings"]


def clock() -> datetime:
    """Now, in UTC. Tests replace `app.extensions['clinic.clock']` to move time."""
    return current_app.extensions.get("clinic.clock", utcnow)()


def actor() -> Actor:
    if current_user.is_authenticated:
        return Actor(current_user.id, current_user.username, roles=frozenset(current_user.roles),
                     request_id=g.get("request_id"), ip=request.remote_addr)
    return Actor(None, "anonymous", request_id=g.get("request_id"), ip=request.remote_addr)


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def form_dict(form, *, lists: tuple[str, ...] = ()) -> dict[str, Any]:
    """A submitted form as a dict for a pydantic model: empty strings become None, `lists` keep lists."""
    data: dict[str, Any] = {}
    for key in form:
        if key == "csrf_token" or key.startswith("_"):
            continue
        if key in lists:
            data[key] = [v for v in form.getlist(key) if v != ""]
        else:
            value = form.get(key, "").strip()
            data[key] = value if value != "" else None
    for key in lists:
        data.setdefault(key, [])
    return data


def parse(model: type[M], data: Any) -> M:
    """Validate `data` into `model`, or raise InvalidInput naming each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise InvalidInput.from_validation(err) from err


def local(dt: datetime | None, zone=None) -> datetime | None:
    if dt is None:
        return None
    return dt.astimezone(zone or settings().zone)


def fmt_datetime(dt: datetime | None, *, with_date: bool = True) -> str:
    if dt is None:
        return ""
    d = local(dt)
    t = d.strftime("%H:%M") if settings().clinic.time_format == "24h" else d.strftime("%I:%M %p").lstrip("0")
    return f"{d.strftime('%d %b %Y')} {t}" if with_date else t


def fmt_date(d: date | datetime | None) -> str:
    if d is None:
        return ""
    if isinstance(d, datetime):
        d = local(d)
    return d.strftime("%d %b %Y")


def age_on(dob: date, today: date) -> int:
    return today.year - dob.year - ((today.month, today.day) < (dob.month, dob.day))


def today_local() -> date:
    return clock().astimezone(settings().zone).date()


# --- request hooks ------------------------------------------------------------------------------


def _same_origin_path(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.netloc and parts.netloc != request.host:
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _safe_next(target: str | None) -> str | None:
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def _login_url(**params: Any) -> str:
    params = {k: v for k, v in params.items() if v}
    return url_for("auth.login") + (f"?{urlencode(params)}" if params else "")


def _idle_timed_out() -> Any:
    """Lock a session that has been idle too long; keep what was being submitted."""
    if not current_user.is_authenticated or g.get("auth_via") == "token":
        return None
    now = clock()
    seen = session.get("seen")
    timeout = timedelta(minutes=settings().security.idle_timeout_minutes)
    background = request.headers.get("X-Background") == "1"  # polling does not count as activity
    if seen is None or now - datetime.fromtimestamp(seen, UTC) <= timeout:
        if not background:
            session["seen"] = now.timestamp()
        return None
    user_id, username = current_user.id, current_user.username
    from clinic import audit

    db = get_db()
    audit.record(db, actor(), "timeout", "staff_user", username, detail=f"idle > {timeout}")
    db.commit()
    logout_user()
    session.pop("seen", None)
    session["locked_user"] = {"id": user_id, "username": username}
    message = "Your session was locked after a period of inactivity. Sign in again to continue."
    if wants_json() or request.headers.get("HX-Request"):
        return jsonify({"error": "SessionExpired", "message": message + " Nothing was saved: send it again "
                        "after signing in.", "login_url": _login_url()}), 401
    if request.method in UNSAFE_METHODS:
        fields = {k: request.form.getlist(k) for k in request.form if k != "csrf_token"}
        page = _same_origin_path(request.referrer) or request.path
        draft = None
        if fields:
            draft = auth_service.keep_draft(db, user_id, page, fields, now=now,
                                            keep_hours=settings().security.draft_keep_hours)
            message += " What you entered has been kept and will be put back in the form."
        flash(message, "warning")
        return redirect(_login_url(next=page, draft=draft))
    flash(message, "warning")
    return redirect(_login_url(next=request.full_path.rstrip("?")))


def _authorize() -> Any:
    endpoint = request.endpoint
    if endpoint is None or endpoint == "static":
        return None
    view = current_app.view_functions.get(endpoint)
    if is_public(view):
        return None
    permission = permission_of(view) or LIBRARY_ENDPOINT_PERMISSIONS.get(endpoint)
    if permission is None:
        log.error("endpoint %s declares no permission; refused", endpoint)
        return _refuse(403, "This page is not available.")
    if not current_user.is_authenticated:
        if wants_json():
            return jsonify({"error": "Unauthorized", "message": "Sign in, or send an API token."}), 401
        return redirect(_login_url(next=request.full_path.rstrip("?")))
    if not current_user.can(permission):
        held = ", ".join(ROLES[r] for r in sorted(current_user.roles)) or "no role"
        return _refuse(403, f"Your role ({held}) does not allow this.")
    return None


def _refuse(status: int, message: str):
    if wants_json():
        return jsonify({"error": "Forbidden" if status == 403 else "Error", "message": message}), status
    return render_template("error.html", status=status, message=message), status


def _before_request() -> Any:
    g.request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex[:16]
    if request.endpoint == "static":
        return None
    for step in (_idle_timed_out, _authorize):
        response = step()
        if response is not None:
            return response
    if request.method in UNSAFE_METHODS and g.get("auth_via") != "token":
        from clinic import csrf

        csrf.protect()
    return None


def _security_headers(response):
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if request.endpoint and not request.endpoint.startswith("swagger") and response.mimetype == "text/html":
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        )
    if current_user.is_authenticated and request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"  # patient data stays off shared disks
    return response


# --- errors -------------------------------------------------------------------------------------


def _clinic_error(err: ClinicError):
    if wants_json():
        return jsonify(err.to_json()), err.status
    return render_template("error.html", status=err.status, message=err.message), err.status


def _csrf_error(err: CSRFError):
    message = ("This form had expired or did not come from Chairside. Nothing was saved; "
               "go back, reload the page and send it again.")
    if wants_json():
        return jsonify({"error": "CSRFError", "message": message + " (send the X-CSRFToken header)"}), 400
    return render_template("error.html", status=400, message=message), 400


def _http_error(err: HTTPException):
    if wants_json():
        return jsonify({"error": err.name, "message": err.description}), err.code
    return render_template("error.html", status=err.code, message=err.description), err.code


def _unexpected(err: Exception):
    if isinstance(err, HTTPException):
        return _http_error(err)
    log.exception("unexpected error in %s (request %s)", request.endpoint, g.get("request_id"))
    message = f"Something went wrong and nothing was saved. Reference {g.get('request_id')}."
    if wants_json():
        return jsonify({"error": "InternalError", "message": message}), 500
    return render_template("error.html", status=500, message=message), 500


def validation_error_response(err: ValidationError):
    """flask-openapi3 calls this when a JSON body or query fails its model."""
    body = InvalidInput.from_validation(err).to_json()
    return current_app.response_class(
        response=__import__("json").dumps(body), status=422, mimetype="application/json")


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "basic"
    app.before_request(_before_request)
    app.after_request(_security_headers)
    app.register_error_handler(ClinicError, _clinic_error)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"settings": settings(), "ROLES": ROLES, "fmt_datetime": fmt_datetime, "fmt_date": fmt_date,
                "nav_items": nav_items}


# The main navigation: (endpoint, label). An item shows when its page exists and the person may open it.
NAV = [
    ("board.day", "Day board"),
    ("board.week", "Calendar"),
    ("patients.index", "Patients"),
    ("waitlist.index", "Waitlist"),
    ("rota.index", "Rota"),
    ("protocols.index", "Protocols"),
    ("cohort.index", "Outcomes"),
    ("auth.staff_list", "Staff"),
    ("auditlog.index", "Audit trail"),
]


def nav_items() -> list[tuple[str, str, bool]]:
    """(url, label, current) for the navigation of the signed-in person."""
    out = []
    for endpoint, label in NAV:
        view = current_app.view_functions.get(endpoint)
        permission = permission_of(view)
        if view is None or permission is None or not current_user.can(permission):
            continue
        section = endpoint.split(".")[0]
        current = bool(request.endpoint) and (request.endpoint == endpoint or (
            request.endpoint.split(".")[0] == section and section not in ("auth", "board")
            and request.endpoint != "patients.home"))
        out.append((url_for(endpoint), label, current))
    return out


def view_funcs_without_permission(app: Flask) -> list[str]:
    """Endpoints that would be refused for declaring no permission (a test keeps this empty)."""
    missing = []
    for endpoint, view in app.view_functions.items():
        if endpoint == "static" or is_public(view) or permission_of(view):
            continue
        if endpoint not in LIBRARY_ENDPOINT_PERMISSIONS:
            missing.append(endpoint)
    return sorted(missing)

