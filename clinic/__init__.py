"""Chairside: runs the clinical floor of a ketamine infusion clinic.

`create_app()` is the app factory: configuration from config.toml (plus environment overrides),
the database engine, migrations, and one blueprint per feature package.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask_openapi3 import Info, OpenAPI
from flask_wtf import CSRFProtect
from sqlalchemy.engine import Engine

from clinic.config import REPO_ROOT, Settings, load_settings

__version__ = "0.1.0"

csrf = CSRFProtect()


def feature_blueprints() -> list:
    """The page blueprints of the feature packages, one line each."""
    from clinic.outcomes.cohort_views import bp as cohort_bp
    from clinic.outcomes.views import bp as outcomes_bp
    from clinic.patients.eligibility_views import bp as eligibility_bp
    from clinic.patients.waitlist_views import bp as waitlist_bp
    from clinic.sessions.board_views import bp as board_bp
    from clinic.sessions.course_views import bp as courses_bp
    from clinic.sessions.protocol_views import bp as protocols_bp
    from clinic.sessions.rota_views import bp as rota_bp
    from clinic.vitals.report_views import bp as reports_bp
    from clinic.vitals.views import bp as monitor_bp

    return [board_bp, courses_bp, rota_bp, eligibility_bp, waitlist_bp, protocols_bp, monitor_bp, reports_bp,
            outcomes_bp, cohort_bp]


def create_app(
    config_path: str | None = None,
    *,
    settings: Settings | None = None,
    overrides: dict[str, Any] | None = None,
    engine: Engine | None = None,
    migrate: bool = True,
) -> OpenAPI:
    """Build the Flask app. Raises `ConfigError` (naming the key) on bad configuration."""
    from clinic import db as dbmod
    from clinic import web
    from clinic.api import register_api
    from clinic.audit_views import bp as audit_bp
    from clinic.auth.views import bp as auth_bp
    from clinic.patients.views import bp as patients_bp
    from clinic.sessions.protocol_service import ensure_seed_protocols
    from clinic.sessions.service import sync_sites

    settings = settings or load_settings(config_path, overrides=overrides)
    app = OpenAPI(
        __name__,
        info=Info(title="Chairside API", version=__version__,
                  description="The services of Chairside as JSON. Authenticate with the browser's "
                              "session cookie plus an X-CSRFToken header, or with `Authorization: "
                              "Bearer <token>` (an API token an administrator issues)."),
        security_schemes={
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "chairside_session"},
        },
        doc_prefix="/api",
        doc_url="/openapi.json",
        static_folder=str(REPO_ROOT / "static"),
        static_url_path="/static",
        instance_path=str(settings.instance_dir),
        validation_error_callback=web.validation_error_response,
        validation_error_status=422,
    )
    app.config.update(
        SECRET_KEY=settings.security.secret_key,
        SESSION_COOKIE_NAME="chairside_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.clinic.environment == "production",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        WTF_CSRF_CHECK_DEFAULT=False,  # checked in web.before_request, where token-authenticated API
        WTF_CSRF_TIME_LIMIT=None,  # calls are told apart; the idle timeout bounds sessions instead
        SEND_FILE_MAX_AGE_DEFAULT=timedelta(days=7),
        TESTING=settings.clinic.environment == "test",
    )
    app.extensions["clinic.settings"] = settings

    engine = engine or dbmod.make_engine(settings.database_url)
    app.extensions["clinic.engine"] = engine
    if migrate:
        dbmod.upgrade(engine)
        with dbmod.session_scope(engine) as db:
            sync_sites(db, settings)
            ensure_seed_protocols(db)  # the shipped protocols exist in every database (idempotent)

    csrf.init_app(app)
    web.init_app(app)
    for blueprint in (auth_bp, patients_bp, audit_bp, *feature_blueprints()):
        app.register_blueprint(blueprint)
    register_api(app)
    app.teardown_appcontext(dbmod.close_db)
    return app
