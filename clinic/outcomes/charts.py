"""The patient dashboard's charts: symptom trajectories across courses, and dissociation and blood-pressure
rise against dose. Built in Python with plotly and drawn by plotly.js served from static/ (static/js/charts.js).

Courses are told apart by line style and marker as well as colour (Okabe–Ito colours), the thresholds are
drawn as labelled lines, the time axis is a true date axis in the clinic's time zone and every axis names
its unit.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pandas as pd
import plotly.graph_objects as go

from clinic.outcomes.scoring import scale_definition
from clinic.outcomes.service import CourseSummary, Dashboard

# colour, dash, marker: one per course, in order (repeats after six courses).
COURSE_STYLES = [
    ("#0072B2", "solid", "circle"),
    ("#D55E00", "dash", "square"),
    ("#009E73", "dot", "triangle-up"),
    ("#CC79A7", "dashdot", "diamond"),
    ("#E69F00", "longdash", "x"),
    ("#56B4E9", "longdashdot", "star"),
]
BY = ("date", "session")
_LAYOUT = {"margin": {"l": 64, "r": 64, "t": 32, "b": 56}, "font": {"size": 14}, "height": 420,
           "legend": {"orientation": "h", "y": -0.25}, "paper_bgcolor": "rgba(0,0,0,0)",
           "plot_bgcolor": "rgba(0,0,0,0)", "hovermode": "closest"}


def style(number: int) -> tuple[str, str, str]:
    """The colour, dash and marker of the patient's course `number` (1-based)."""
    return COURSE_STYLES[(number - 1) % len(COURSE_STYLES)]


def _local(times: pd.Series | list, zone: ZoneInfo) -> list[str]:
    """Aware times as the clinic's wall-clock time, ISO text plotly reads as dates."""
    return [pd.Timestamp(t).tz_convert(zone).strftime("%Y-%m-%d %H:%M") for t in times]


def _session_x(points: pd.DataFrame) -> pd.Series:
    """Session number within the course; a score outside a session counts at the last session before it,
    and 0 before the first session."""
    return points["session_number"].ffill().fillna(0)


def _level(fig: go.Figure, x: list, y: float, *, name: str, colour: str, dash: str, group: str, text: str) -> None:
    fig.add_trace(go.Scatter(
        x=x, y=[y, y], mode="lines", name=name, legendgroup=group, showlegend=False,
        line={"color": colour, "dash": dash, "width": 1.5}, hovertemplate=f"{text}<extra></extra>"))


def trajectory(dash: Dashboard, scale: str, *, by: str = "date", zone: ZoneInfo) -> go.Figure:
    """One scale's totals across all the patient's courses: x = date (`by="date"`) or session number within
    the course (`by="session"`); per course its baseline, 50 % response line and remission threshold, and
    (by date) a marked line where each course or booster starts."""
    if by not in BY:
        raise ValueError(f"by must be one of {', '.join(BY)}; got {by!r}.")
    definition = scale_definition(scale)
    scores = dash.scores[dash.scores["scale"] == scale]
    fig = go.Figure()
    for c in dash.courses:
        points = scores[scores["course_id"] == c.course.id].sort_values(["measured_at", "response_id"])
        if points.empty:
            continue
        colour, line_dash, marker = style(c.number)
        group = f"course-{c.number}"
        when = _local(points["measured_at"], zone)
        x = when if by == "date" else _session_x(points).tolist()
        fig.add_trace(go.Scatter(
            x=x, y=points["total"].tolist(), name=c.label, mode="lines+markers", legendgroup=group,
            line={"color": colour, "dash": line_dash, "width": 2.5}, marker={"symbol": marker, "size": 11},
            customdata=[[w, "" if pd.isna(n) else int(n)] for w, n in zip(when, points["session_number"],
                                                                         strict=True)],
            hovertemplate=f"{c.label}<br>%{{customdata[0]}} · session %{{customdata[1]}}<br>{scale} "
                          "%{y:.0f}<extra></extra>"))
        span = [min(x), max(x)] if by == "date" else [0 if min(x) == 0 else 1, max(max(x), 1)]
        row = next((r for r in c.outcomes if r["scale"] == scale), None)
        if row is None:
            continue
        if not pd.isna(row["baseline"]):
            _level(fig, span, row["baseline"], name=f"{c.label}: baseline", colour=colour, dash="solid", group=group,
                   text=f"{c.label} baseline {row['baseline']:.0f}")
        if not pd.isna(row["response_line"]):
            _level(fig, span, row["response_line"], name=f"{c.label}: 50 % response line", colour=colour,
                   dash="dash", group=group, text=f"{c.label} response at or below {row['response_line']:g} "
                                                  "(50 % below baseline)")
        if not pd.isna(row["remission_below"]):
            _level(fig, span, row["remission_below"], name=f"{c.label}: remission threshold", colour="#4a5866",
                   dash="dot", group=group, text=f"Remission below {row['remission_below']:.0f}")
    if by == "date":
        for c in dash.courses:
            _course_marker(fig, c, zone)
        xaxis = {"type": "date", "title": {"text": "date"}}
    else:
        xaxis = {"title": {"text": "session number within the course (0 = before the first session)"},
                 "tickmode": "linear", "dtick": 1, "rangemode": "tozero"}
    fig.update_layout(**_LAYOUT, xaxis=xaxis,
                      yaxis={"title": {"text": f"{scale} total (points, {definition.total_min}–"
                                                f"{definition.total_max})"},
                             "range": [0, definition.total_max], "rangemode": "tozero"})
    return fig


def _course_marker(fig: go.Figure, c: CourseSummary, zone: ZoneInfo) -> None:
    if c.first_at is None:
        return
    x = _local([c.first_at], zone)[0]
    colour, _dash, _marker = style(c.number)
    words = "Booster" if c.course.kind == "booster" else f"{c.label} starts"
    fig.add_shape(type="line", x0=x, x1=x, xref="x", y0=0, y1=1, yref="paper",
                  line={"color": colour, "width": 1.5, "dash": "longdash"}, name=f"course-start-{c.number}")
    fig.add_annotation(x=x, xref="x", y=1, yref="paper", yanchor="bottom", text=words, showarrow=False,
                       font={"size": 12, "color": colour}, xanchor="left")


def dose_response(dash: Dashboard) -> go.Figure | None:
    """Peak CADSS-6 (left axis) and the largest systolic rise (right axis, mmHg) of each session against its
    dose in mg/kg; None when no session has a dose in mg/kg."""
    rows = dash.sessions[dash.sessions["mg_per_kg"].notna()]
    if rows.empty:
        return None
    fig = go.Figure()
    label = {c.course.id: c.label for c in dash.courses}
    text = [f"{label.get(cid, 'Course')} · session {int(n)}" for cid, n in zip(rows["course_id"],
                                                                                rows["session_number"], strict=True)]
    cadss = rows["peak_cadss6"].notna()
    fig.add_trace(go.Scatter(
        x=rows.loc[cadss, "mg_per_kg"].tolist(), y=rows.loc[cadss, "peak_cadss6"].tolist(),
        text=[t for t, k in zip(text, cadss, strict=True) if k], name="Peak CADSS-6 (0–24)", mode="markers",
        marker={"symbol": "circle", "size": 12, "color": "#6a3d9a"},
        hovertemplate="%{text}<br>%{x:.2f} mg/kg · peak CADSS-6 %{y:.0f}<extra></extra>"))
    rise = rows["systolic_rise"].notna()
    fig.add_trace(go.Scatter(
        x=rows.loc[rise, "mg_per_kg"].tolist(), y=rows.loc[rise, "systolic_rise"].tolist(), yaxis="y2",
        text=[t for t, k in zip(text, rise, strict=True) if k], name="Systolic rise over baseline (mmHg)",
        mode="markers", marker={"symbol": "diamond-open", "size": 12, "color": "#b3261e", "line": {"width": 2}},
        hovertemplate="%{text}<br>%{x:.2f} mg/kg · systolic +%{y:.0f} mmHg<extra></extra>"))
    fig.update_layout(**{**_LAYOUT, "height": 380},
                      xaxis={"title": {"text": "dose (mg/kg)"}, "rangemode": "tozero"},
                      yaxis={"title": {"text": "peak CADSS-6 (points, 0–24)"}, "range": [0, 24]},
                      yaxis2={"title": {"text": "systolic rise over baseline (mmHg)"}, "overlaying": "y",
                              "tickmode": "auto", "side": "right", "showgrid": False, "zeroline": True})
    return fig
