"""The live chart of one session: vitals and scores against minutes since dosing began.

Built in Python with plotly and drawn by plotly.js served from static/. Told apart by line style and
marker as well as colour, with the alert limits drawn, so a colour-blind reader can follow it.
"""

from __future__ import annotations

import plotly.graph_objects as go

SERIES = [
    # field, name, colour, dash, marker
    ("systolic", "Systolic BP (mmHg)", "#b3261e", "solid", "circle"),
    ("diastolic", "Diastolic BP (mmHg)", "#d9730d", "dash", "square"),
    ("heart_rate", "Heart rate (bpm)", "#0b5cad", "dot", "triangle-up"),
    ("spo2", "SpO₂ (%)", "#1b6e3a", "dashdot", "diamond"),
]
SCORES = [("CADSS-6", "CADSS-6 (0–24)", "#6a3d9a", "longdash", "x"),
          ("MOAA/S", "MOAA/S (0–5)", "#4a5866", "longdashdot", "star")]


def _minutes(state, t) -> float:
    origin = state.session.dosing_started_at or state.session.checked_in_at or state.session.starts_at
    return round((t - origin).total_seconds() / 60, 1)


def session_chart(state) -> go.Figure:
    """Vitals (left axis) and dissociation / sedation scores (right axis) over the session."""
    fig = go.Figure()
    for field, name, colour, dash, marker in SERIES:
        points = [(r.measured_at, getattr(r, field)) for r in state.readings if getattr(r, field) is not None]
        if points:
            fig.add_trace(go.Scatter(
                x=[_minutes(state, t) for t, _ in points], y=[v for _, v in points], name=name, mode="lines+markers",
                line={"color": colour, "dash": dash, "width": 2}, marker={"symbol": marker, "size": 9}))
    for scale, name, colour, dash, marker in SCORES:
        points = [(s.measured_at, s.total) for s in state.scores if s.scale == scale]
        if points:
            fig.add_trace(go.Scatter(
                x=[_minutes(state, t) for t, _ in points], y=[v for _, v in points], name=name, yaxis="y2",
                mode="lines+markers", line={"color": colour, "dash": dash, "width": 2},
                marker={"symbol": marker, "size": 10}))
    t = state.thresholds
    for limit, label in ((t.systolic_high, f"systolic limit {t.systolic_high}"),
                         (t.diastolic_high, f"diastolic limit {t.diastolic_high}")):
        fig.add_hline(y=limit, line={"color": "#b3261e", "dash": "dot", "width": 1},
                      annotation_text=label, annotation_position="top left", annotation_font_size=12)
    since = "minutes since dosing began" if state.session.dosing_started_at else "minutes since check-in"
    fig.update_layout(
        height=380, margin={"l": 56, "r": 56, "t": 24, "b": 48}, font={"size": 14},
        xaxis={"title": {"text": since}, "zeroline": True, "zerolinewidth": 2},
        yaxis={"title": {"text": "mmHg · bpm · %"}, "rangemode": "tozero"},
        yaxis2={"title": {"text": "score"}, "overlaying": "y", "side": "right", "range": [0, 24], "showgrid": False,
                "tickmode": "linear", "dtick": 4},
        legend={"orientation": "h", "y": -0.28}, paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
        hovermode="x unified",
    )
    return fig
