"""Delivering the outbox by SMTP.

`send_pending` takes the pending e-mail messages that are due, and for each one:

1. **claims** it with a conditional ``UPDATE … SET attempts = attempts + 1, due_at = <lease end>
   WHERE id = :id AND status = 'pending' AND due_at <= :now`` and commits. Only one sender's UPDATE
   matches (PostgreSQL re-checks the WHERE after waiting for the row lock; SQLite serializes writers),
   and the lease keeps every other sender off the row while it is being sent;
2. sends it with smtplib, with no database transaction open (SMTP can be slow, and on SQLite an open
   write transaction would stall every other writer);
3. marks it ``sent``, or stores the error and puts it back as ``pending`` with a growing delay, until
   `smtp.max_attempts` attempts have failed, when it becomes ``failed``.

Delivery is at most once per claim. Only a crash between the server accepting a message and step 3
can repeat it (after the lease runs out), which is the best SMTP allows. Logs carry message ids and
error kinds only, never addresses or text.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

import sqlalchemy as sa
from sqlmodel import Session, select

from clinic import reminders
from clinic.config import Settings, SmtpSection
from clinic.db import utcnow
from clinic.outbox import OutboxMessage

log = logging.getLogger("clinic.notify")

SmtpFactory = Callable[[SmtpSection], smtplib.SMTP]
# Refusals of one message; the connection itself is still good for the next one.
_MESSAGE_REFUSED = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError,
                    smtplib.SMTPNotSupportedError)


def connect(cfg: SmtpSection) -> smtplib.SMTP:
    """An open, authenticated SMTP connection as `[smtp]` describes it (the default factory)."""
    context = ssl.create_default_context()
    if cfg.use_tls:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout_seconds, context=context)
    else:
        smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_seconds)
    try:
        if cfg.starttls:
            smtp.starttls(context=context)
        if cfg.username:
            smtp.login(cfg.username, cfg.password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def retry_delay(attempts: int) -> timedelta:
    """How long a message waits after its `attempts`-th failure: 5, 10, 20, 40, then 60 minutes."""
    return timedelta(minutes=min(5 * 2 ** (max(attempts, 1) - 1), 60))


def lease(cfg: SmtpSection) -> timedelta:
    """How long a claimed message stays out of other senders' reach: well beyond one SMTP exchange."""
    return max(timedelta(minutes=10), timedelta(seconds=4 * cfg.timeout_seconds))


def build_email(message: OutboxMessage, from_address: str, now: datetime) -> EmailMessage:
    """The plain-text e-mail for an outbox row. The Message-ID is derived from the row, so a receiving
    server that de-duplicates by Message-ID also drops a repeat."""
    domain = parseaddr(from_address)[1].rpartition("@")[2] or "localhost"
    email = EmailMessage()
    email["From"] = from_address
    email["To"] = message.recipient
    email["Subject"] = message.subject
    email["Date"] = format_datetime(now)
    email["Message-ID"] = f"<chairside.outbox.{message.id}@{domain}>"
    email["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies, please
    email.set_content(message.body)
    return email


@dataclass
class SendResult:
    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)  # failed this time, will be tried again
    failed: list[int] = field(default_factory=list)  # gave up after smtp.max_attempts
    not_sent: list[int] = field(default_factory=list)  # no longer wanted (e.g. the session was cancelled)


_OUTBOX = OutboxMessage.__table__


def _claim(db: Session, message_id: int, now: datetime, hold: timedelta) -> int | None:
    """Take the message for this sender; the attempt number, or None if someone else has it."""
    row = db.exec(
        sa.update(_OUTBOX)
        .where(_OUTBOX.c.id == message_id, _OUTBOX.c.status == "pending", _OUTBOX.c.due_at <= now)
        .values(attempts=_OUTBOX.c.attempts + 1, due_at=max(now, utcnow()) + hold)
        .returning(_OUTBOX.c.attempts)
    ).first()
    db.commit()
    return None if row is None else row[0]


def _set(db: Session, message_id: int, **values) -> None:
    db.exec(sa.update(_OUTBOX).where(_OUTBOX.c.id == message_id, _OUTBOX.c.status == "pending").values(**values))
    db.commit()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        return f"{type(exc).__name__}: {exc.smtp_code} {text}"[:1000]
    return f"{type(exc).__name__}: {exc}"[:1000]


def _failure(db: Session, message_id: int, attempts: int, exc: BaseException, now: datetime,
             cfg: SmtpSection, result: SendResult) -> None:
    log.warning("outbox message %s: attempt %s failed (%s)", message_id, attempts, type(exc).__name__)
    if attempts >= cfg.max_attempts:
        _set(db, message_id, status="failed", last_error=_describe(exc))
        result.failed.append(message_id)
    else:
        _set(db, message_id, last_error=_describe(exc), due_at=now + retry_delay(attempts))
        result.retrying.append(message_id)


def _quit(smtp: smtplib.SMTP | None) -> None:
    if smtp is None:
        return
    try:
        smtp.quit()
    except Exception:  # noqa: BLE001 - the connection is being dropped anyway
        smtp.close()


def send_pending(db: Session, settings: Settings, now: datetime, *, smtp_factory: SmtpFactory = connect,
                 limit: int = 100) -> SendResult:
    """Send the pending e-mails due by `now` (at most `limit`), one SMTP connection for the run."""
    cfg = settings.smtp
    hold = lease(cfg)
    ids = list(db.exec(
        select(OutboxMessage.id)
        .where(OutboxMessage.status == "pending", OutboxMessage.channel == "email", OutboxMessage.due_at <= now)
        .order_by(OutboxMessage.due_at, OutboxMessage.id)
        .limit(limit)
    ))
    db.commit()
    result = SendResult()
    smtp: smtplib.SMTP | None = None
    try:
        for message_id in ids:
            attempts = _claim(db, message_id, now, hold)
            if attempts is None:
                continue  # another sender claimed it
            message = db.get(OutboxMessage, message_id)
            db.refresh(message)
            if message.session_id is not None and message.dedupe_key.startswith("reminder:"):
                current = reminders.text_before_sending(db, settings, message, now)
                if isinstance(current, str):  # e.g. the session was cancelled: nothing to send
                    _set(db, message_id, status="skipped", last_error=current)
                    result.not_sent.append(message_id)
                    continue
                if any(getattr(message, k) != v for k, v in current.items()):
                    _set(db, message_id, **current)  # the session moved, or the address changed
                    db.refresh(message)
            db.commit()  # no transaction stays open while we talk to the SMTP server
            if smtp is None:
                try:
                    smtp = smtp_factory(cfg)
                except Exception as exc:  # noqa: BLE001 - server unreachable: stop, the rest stay unclaimed
                    _failure(db, message_id, attempts, exc, now, cfg, result)
                    break
            try:
                smtp.send_message(build_email(message, cfg.from_address, now))
            except _MESSAGE_REFUSED as exc:
                _failure(db, message_id, attempts, exc, now, cfg, result)
                continue
            except Exception as exc:  # noqa: BLE001 - the connection broke: reconnect for the next one
                _failure(db, message_id, attempts, exc, now, cfg, result)
                _quit(smtp)
                smtp = None
                continue
            _set(db, message_id, status="sent", sent_at=now, last_error=None)
            result.sent.append(message_id)
    finally:
        _quit(smtp)
        db.commit()
    if ids:
        log.info("outbox: %s sent, %s to retry, %s failed, %s not sent", len(result.sent), len(result.retrying),
                 len(result.failed), len(result.not_sent))
    return result
