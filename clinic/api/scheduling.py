"""Course ordering and booking endpoints of the JSON API."""

from __future__ import annotations

from flask_openapi3 import Tag
from pydantic import BaseModel, ConfigDict, Field

from clinic.api import ErrorOut, Out, UtcDateTime, api, dump
from clinic.auth.permissions import requires
from clinic.db import get_db
from clinic.sessions import booking
from clinic.sessions.booking import CourseOrder, SlotIn
from clinic.web import actor, clock, settings

tag = Tag(name="scheduling", description="Ordering courses, the series planner, booking sessions")


class CoursePath(BaseModel):
    course_id: int


class SlotOut(Out):
    number: int
    chair_id: int
    start: UtcDateTime
    end: UtcDateTime
    dosing_start: UtcDateTime
    dosing_end: UtcDateTime


class UnplacedOut(Out):
    number: int
    reason: str
    blockers: dict[str, int]
    alternatives: list[SlotOut]
    alternative_notes: list[str]


class ProposalOut(BaseModel):
    complete: bool
    slots: list[SlotOut]
    unplaced: list[UnplacedOut]
    problems: list[str] = Field(description="What stops the course being ordered (eligibility, consent)")


class BookCourse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order: CourseOrder
    slots: list[SlotIn]


class CourseOut(Out):
    id: int
    patient_id: int
    protocol_id: int
    site_id: int
    prescriber_id: int
    kind: str
    status: str
    planned_sessions: int
    ordered_at: UtcDateTime


class SessionOut(Out):
    id: int
    course_id: int
    patient_id: int
    site_id: int
    chair_id: int
    number_in_course: int
    starts_at: UtcDateTime
    ends_at: UtcDateTime
    status: str


@api.post("/courses/proposal", tags=[tag], responses={200: ProposalOut, 404: ErrorOut})
@requires("courses.order")
def propose_course(body: CourseOrder):
    """The planner's proposal for a whole course; nothing is booked."""
    p = booking.propose(get_db(), body, now=clock(),
                        granularity_minutes=settings().sessions.slot_granularity_minutes)
    return ProposalOut(complete=p.plan.complete,
                       slots=[SlotOut.model_validate(s) for s in p.plan.slots],
                       unplaced=[UnplacedOut.model_validate(u) for u in p.plan.unplaced],
                       problems=p.problems).model_dump(mode="json")


@api.post("/courses", tags=[tag], responses={201: CourseOut, 404: ErrorOut, 409: ErrorOut})
@requires("courses.order")
def book_course(body: BookCourse):
    """Book a confirmed proposal: all of its sessions, or none (409 with the reason)."""
    course = booking.book_course(get_db(), actor(), body.order, body.slots, now=clock(),
                                 granularity_minutes=settings().sessions.slot_granularity_minutes)
    return dump(CourseOut, course, 201)


@api.post("/courses/<int:course_id>/sessions", tags=[tag], responses={201: SessionOut, 404: ErrorOut,
                                                                        409: ErrorOut})
@requires("sessions.book")
def book_session(path: CoursePath, body: SlotIn):
    """Book one session of a course at a given chair and time; 409 if it is taken or breaks a rule."""
    row = booking.book_session(get_db(), actor(), path.course_id, body, now=clock(),
                               granularity_minutes=settings().sessions.slot_granularity_minutes)
    return dump(SessionOut, row, 201)


