"""Sign-in, sign-out, re-lock, kept drafts, and the administrator's staff pages."""

from __future__ import annotations

from flask import Blueprint, flash, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from clinic import audit
from clinic.auth import service
from clinic.auth.permissions import public, requires
from clinic.auth.schemas import CredentialCreate, PasswordReset, StaffCreate, StaffUpdate, TokenCreate
from clinic.db import get_db
from clinic.errors import ClinicError, InvalidInput
from clinic.sessions.service import list_sites
from clinic.vocab import CREDENTIAL_KINDS
from clinic.web import SignedInUser, _safe_next, actor, clock, form_dict, parse, settings

bp = Blueprint("auth", __name__)


@bp.route("/health")
@public
def health():
    return jsonify({"status": "ok"})


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    locked = session.get("locked_user")
    next_url = _safe_next(request.values.get("next"))
    draft = request.values.get("draft")
    error = None
    username = request.form.get("username", locked["username"] if locked else "")
    if request.method == "POST":
        s = settings().security
        try:
            staff = service.authenticate(get_db(), username, request.form.get("password", ""), now=clock(),
                                         max_failures=s.login_max_failures,
                                         lockout_minutes=s.login_lockout_minutes, ip=request.remote_addr)
        except ClinicError as err:
            error = err.message
            return render_template("auth/login.html", error=error, username=username, next=next_url,
                                   draft=draft, locked=locked), err.status
        session.clear()
        session.permanent = True
        login_user(SignedInUser(staff))
        session["seen"] = clock().timestamp()
        target = next_url or url_for("patients.home")
        if draft and locked and locked["id"] == staff.id:
            target += ("&" if "?" in target else "?") + f"draft={draft}"
        elif draft:
            flash("A form kept from someone else's locked session was not restored.", "info")
        return redirect(target)
    return render_template("auth/login.html", error=error, username=username, next=next_url, draft=draft,
                           locked=locked)


@bp.post("/logout")
@requires("account.self")
def logout():
    db = get_db()
    audit.record(db, actor(), "logout", "staff_user", current_user.username)
    db.commit()
    logout_user()
    session.clear()
    flash("You have signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.get("/drafts/<token>")
@requires("account.self")
def take_draft(token: str):
    """The fields someone was submitting when their session locked (once, owner only)."""
    draft = service.take_draft(get_db(), current_user.id, token, now=clock())
    if draft is None:
        return jsonify({"error": "NotFound", "message": "That kept entry is gone or was not yours."}), 404
    return jsonify(draft)


# --- administration -----------------------------------------------------------------------------


@bp.get("/admin/staff")
@requires("staff.view")
def staff_list():
    db = get_db()
    sites = {s.id: s for s in list_sites(db, active_only=False)}
    return render_template("auth/staff_list.html", staff=service.list_staff(db), sites=sites)


def _staff_form_context(**extra):
    return {"sites": list_sites(get_db()), **extra}


@bp.route("/admin/staff/new", methods=["GET", "POST"])
@requires("staff.manage")
def staff_new():
    values, errors, status = {}, {}, 200
    if request.method == "POST":
        values = form_dict(request.form, lists=("roles", "site_ids"))
        try:
            data = parse(StaffCreate, values)
            user = service.create_staff(get_db(), actor(), data,
                                        password_min_length=settings().security.password_min_length)
            flash(f"Account {user.username} created.", "success")
            return redirect(url_for("auth.staff_edit", user_id=user.id))
        except ClinicError as err:
            errors, status = err.fields or {"__all__": err.message}, err.status
    return render_template("auth/staff_form.html", **_staff_form_context(values=values, errors=errors,
                                                                          user=None)), status


@bp.route("/admin/staff/<int:user_id>", methods=["GET", "POST"])
@requires("staff.view")
def staff_edit(user_id: int):
    db = get_db()
    user = service.get_staff(db, user_id)
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        if not current_user.can("staff.manage"):
            raise ClinicError("Only an administrator can change staff accounts.")
        values = form_dict(request.form, lists=("roles", "site_ids"))
        try:
            service.update_staff(db, actor(), user_id, parse(StaffUpdate, values))
            flash("Changes saved.", "success")
            return redirect(url_for("auth.staff_edit", user_id=user_id))
        except ClinicError as err:
            errors, status = err.fields or {"__all__": err.message}, err.status
    else:
        values = {"full_name": user.full_name, "email": user.email,
                  "roles": sorted(service.roles_of(db, user_id)),
                  "site_ids": [str(s) for s in service.sites_of(db, user_id)]}
    return render_template(
        "auth/staff_form.html",
        **_staff_form_context(values=values, errors=errors, user=user,
                              credentials=service.credentials_of(db, user_id),
                              tokens=service.tokens_of(db, user_id), credential_kinds=CREDENTIAL_KINDS,
                              today=clock().date()),
    ), status


@bp.post("/admin/staff/<int:user_id>/active")
@requires("staff.manage")
def staff_set_active(user_id: int):
    active = request.form.get("active") == "1"
    user = service.set_active(get_db(), actor(), user_id, active, now=clock())
    flash(f"{user.full_name} is now {'active' if active else 'deactivated'}.", "success")
    return redirect(url_for("auth.staff_edit", user_id=user_id))


@bp.post("/admin/staff/<int:user_id>/password")
@requires("staff.manage")
def staff_password(user_id: int):
    try:
        service.reset_password(get_db(), actor(), user_id, parse(PasswordReset, form_dict(request.form)),
                               password_min_length=settings().security.password_min_length, now=clock())
        flash("Password changed.", "success")
    except InvalidInput as err:
        flash(err.fields.get("password", err.message), "error")
    return redirect(url_for("auth.staff_edit", user_id=user_id))


@bp.post("/admin/staff/<int:user_id>/credentials")
@requires("staff.manage")
def credential_add(user_id: int):
    try:
        service.add_credential(get_db(), actor(), user_id, parse(CredentialCreate, form_dict(request.form)),
                               now=clock())
        flash("Credential recorded.", "success")
    except InvalidInput as err:
        flash("Credential not saved: " + "; ".join(f"{k}: {v}" for k, v in err.fields.items()), "error")
    return redirect(url_for("auth.staff_edit", user_id=user_id) + "#credentials")


@bp.post("/admin/credentials/<int:credential_id>/retire")
@requires("staff.manage")
def credential_retire(credential_id: int):
    cred = get_db().get(service.Credential, credential_id)
    service.retire_credential(get_db(), actor(), credential_id, now=clock())
    flash("Credential retired.", "success")
    return redirect(url_for("auth.staff_edit", user_id=cred.staff_user_id) + "#credentials")


@bp.post("/admin/staff/<int:user_id>/tokens")
@requires("tokens.manage")
def token_issue(user_id: int):
    try:
        token, secret = service.issue_token(get_db(), actor(), user_id,
                                            parse(TokenCreate, form_dict(request.form)), now=clock())
    except InvalidInput as err:
        flash("Token not issued: " + err.message, "error")
        return redirect(url_for("auth.staff_edit", user_id=user_id) + "#tokens")
    return render_template("auth/token_issued.html", token=token, secret=secret, user_id=user_id)


@bp.post("/admin/tokens/<int:token_id>/revoke")
@requires("tokens.manage")
def token_revoke(token_id: int):
    token = service.revoke_token(get_db(), actor(), token_id, now=clock())
    flash(f"Token {token.prefix}… revoked.", "success")
    return redirect(url_for("auth.staff_edit", user_id=token.staff_user_id) + "#tokens")
