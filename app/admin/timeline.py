"""A build's steps as a timeline, drawn on the server as SVG: one bar per step from its start to
its end, packed into lanes so the number of lanes is how many ran at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape

from app.models import JobStep

WIDTH = 960
LANE_HEIGHT = 10
LANE_GAP = 2
MARGIN = 40
COLOURS = {"concepts": "#7b5ea7", "sub-concepts": "#2f6fde", "knowledge-units": "#2e9d6a"}
FAILED = "#d0403a"


@dataclass(frozen=True)
class Bar:
    step: JobStep
    lane: int
    x: float
    width: float


def _lanes(steps: list[JobStep]) -> list[tuple[JobStep, int]]:
    """Greedy interval packing: each step takes the first lane free at its start."""
    lane_ends: list[datetime] = []
    placed = []
    for step in sorted(steps, key=lambda s: s.started_at):
        lane = next((i for i, end in enumerate(lane_ends) if end <= step.started_at), len(lane_ends))
        if lane == len(lane_ends):
            lane_ends.append(step.completed_at)
        else:
            lane_ends[lane] = step.completed_at
        placed.append((step, lane))
    return placed


def timeline_svg(steps: list[JobStep]) -> str:
    """The SVG markup, or an empty string when no step has both a start and an end."""
    timed = [s for s in steps if s.started_at and s.completed_at]
    if not timed:
        return ""
    start = min(s.started_at for s in timed)
    span = max((max(s.completed_at for s in timed) - start).total_seconds(), 0.001)
    scale = (WIDTH - 2 * MARGIN) / span
    placed = _lanes(timed)
    lanes = max(lane for _, lane in placed) + 1
    height = MARGIN + lanes * (LANE_HEIGHT + LANE_GAP) + 24
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-label="{len(timed)} steps over {span:.1f} s in at most {lanes} parallel lanes">'
    ]
    for tick in range(6):
        x = MARGIN + (WIDTH - 2 * MARGIN) * tick / 5
        parts.append(f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{height - 20}" class="tick"/>')
        parts.append(f'<text x="{x:.1f}" y="14" text-anchor="middle">{span * tick / 5:.1f} s</text>')
    for step, lane in placed:
        x = MARGIN + (step.started_at - start).total_seconds() * scale
        width = max(1.0, (step.completed_at - step.started_at).total_seconds() * scale)
        y = MARGIN - 16 + lane * (LANE_HEIGHT + LANE_GAP)
        colour = FAILED if step.status == "failed" else COLOURS.get(step.type, "#888")
        name = step.entity_name or "path"
        label = escape(f"{step.type}: {name} · {step.status} · {step.duration_ms or 0} ms")
        parts.append(
            f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{LANE_HEIGHT}" fill="{colour}">'
            f"<title>{label}</title></rect>"
        )
    parts.append(
        f'<text x="{MARGIN}" y="{height - 4}">{len(timed)} steps · {span:.1f} s · '
        f"up to {lanes} at once</text></svg>"
    )
    return "".join(parts)
