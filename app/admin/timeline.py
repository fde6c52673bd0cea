"""A build's steps as a timeline, drawn on the server as SVG: one bar per step from its start to
its end, packed into lanes so the number of lanes is how many ran at once. The part of a step
spent waiting for the rate limit is drawn first, hatched and pale, so an admin sees at a glance
whether the limit or the provider is the bottleneck (a step waits before its call, so that is
where the wait goes; the few waits after a call, for the token cap, are drawn there too)."""

from __future__ import annotations

from datetime import datetime
from html import escape

from app.models import JobStep

WIDTH = 960
LANE_HEIGHT = 10
LANE_GAP = 2
MARGIN = 40
COLOURS = {"concepts": "#7b5ea7", "sub-concepts": "#2f6fde", "knowledge-units": "#2e9d6a"}
FAILED = "#d0403a"
# White stripes over a pale tint of the step's colour: the wait reads as the same step, idle.
WAIT_PATTERN = (
    '<defs><pattern id="wait-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
    'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#ffffff" '
    'stroke-width="3"/></pattern></defs>'
)


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
    parts.append(WAIT_PATTERN)
    for step, lane in placed:
        x = MARGIN + (step.started_at - start).total_seconds() * scale
        width = max(1.0, (step.completed_at - step.started_at).total_seconds() * scale)
        y = MARGIN - 16 + lane * (LANE_HEIGHT + LANE_GAP)
        parts.append(_bar(step, x, y, width, scale))
    waited_s = sum(s.rate_limit_waited_ms or 0 for s in timed) / 1000
    parts.append(
        f'<text x="{MARGIN}" y="{height - 4}">{len(timed)} steps · {span:.1f} s · '
        f"up to {lanes} at once · {waited_s:.1f} s waiting for the rate limit (hatched)</text></svg>"
    )
    return "".join(parts)


def _bar(step: JobStep, x: float, y: int, width: float, scale: float) -> str:
    """One step: its wait for the rate limit (hatched, pale) then its work (solid), one tooltip."""
    colour = FAILED if step.status == "failed" else COLOURS.get(step.type, "#888")
    wait_width = min(width, (step.rate_limit_waited_ms or 0) / 1000 * scale)
    waited, worked = _seconds(step.rate_limit_waited_ms), _seconds(step.work_ms)
    label = escape(
        f"{step.type}: {step.entity_name or 'path'} · {step.status} · {_seconds(step.duration_ms)} "
        f"({waited} waiting for the rate limit, {worked} working)"
    )
    work = (
        f'<rect class="work" x="{x + wait_width:.1f}" y="{y}" width="{max(0.0, width - wait_width):.1f}" '
        f'height="{LANE_HEIGHT}" fill="{colour}"/>'
    )
    if wait_width <= 0:
        return f"<g>{work}<title>{label}</title></g>"
    wait = (
        f'<rect class="wait" x="{x:.1f}" y="{y}" width="{wait_width:.1f}" height="{LANE_HEIGHT}" '
        f'fill="{colour}" fill-opacity="0.35"/>'
        f'<rect x="{x:.1f}" y="{y}" width="{wait_width:.1f}" height="{LANE_HEIGHT}" fill="url(#wait-hatch)"/>'
    )
    return f"<g>{wait}{work}<title>{label}</title></g>"


def _seconds(ms: int | None) -> str:
    return f"{(ms or 0) / 1000:.1f} s"
