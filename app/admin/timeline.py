"""A build's steps as a timeline, drawn on the server as SVG: one bar per step from its start to
its end, packed into lanes so the number of lanes is how many ran at once. The part of a step
spent waiting for the rate limit is drawn first, hatched and pale, so an admin sees at a glance
whether the limit or the provider is the bottleneck (a step waits before its call, so that is
where the wait goes; the few waits after a call, for the token cap, are drawn there too). A
running step is drawn up to now, its wait in progress hatched too."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape

from app.database import utcnow
from app.models import BuildStep, WorkStatus

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


@dataclass(frozen=True)
class Span:
    """A step as drawn: its start, its end (now, while it runs) and its time waited so far."""

    step: BuildStep
    start: datetime
    end: datetime
    waited_ms: int


def _span(step: BuildStep, now: datetime) -> Span | None:
    """A finished step as recorded; a running one up to now, hatched to now while it waits (a
    step waits before its call, so a step waiting now has done no work yet)."""
    if step.started_at is None:
        return None
    if step.completed_at is not None:
        return Span(step, step.started_at, step.completed_at, step.rate_limit_waited_ms or 0)
    if step.status != WorkStatus.RUNNING:
        return None
    end = max(now, step.started_at)
    elapsed_ms = int((end - step.started_at).total_seconds() * 1000)
    waited_ms = elapsed_ms if step.waiting_for_rate_limit else min(elapsed_ms, step.rate_limit_waited_ms or 0)
    return Span(step, step.started_at, end, waited_ms)


def _lanes(spans: list[Span]) -> list[tuple[Span, int]]:
    """Greedy interval packing: each step takes the first lane free at its start."""
    lane_ends: list[datetime] = []
    placed = []
    for span in sorted(spans, key=lambda s: s.start):
        lane = next((i for i, end in enumerate(lane_ends) if end <= span.start), len(lane_ends))
        if lane == len(lane_ends):
            lane_ends.append(span.end)
        else:
            lane_ends[lane] = span.end
        placed.append((span, lane))
    return placed


def timeline_svg(steps: list[BuildStep], now: datetime | None = None) -> str:
    """The SVG markup, or an empty string when no step has started. Running steps end at `now`
    (stored naive UTC; the current time by default)."""
    moment = now or utcnow()
    timed = [span for span in (_span(step, moment) for step in steps) if span is not None]
    if not timed:
        return ""
    start = min(s.start for s in timed)
    span_s = max((max(s.end for s in timed) - start).total_seconds(), 0.001)
    scale = (WIDTH - 2 * MARGIN) / span_s
    placed = _lanes(timed)
    lanes = max(lane for _, lane in placed) + 1
    height = MARGIN + lanes * (LANE_HEIGHT + LANE_GAP) + 24
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-label="{len(timed)} steps over {span_s:.1f} s in at most {lanes} parallel lanes">'
    ]
    for tick in range(6):
        x = MARGIN + (WIDTH - 2 * MARGIN) * tick / 5
        parts.append(f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{height - 20}" class="tick"/>')
        parts.append(
            f'<text x="{x:.1f}" y="14" text-anchor="middle">{_label(span_s * tick / 5, span_s)}</text>'
        )
    parts.append(WAIT_PATTERN)
    for span, lane in placed:
        x = MARGIN + (span.start - start).total_seconds() * scale
        width = max(1.0, (span.end - span.start).total_seconds() * scale)
        y = MARGIN - 16 + lane * (LANE_HEIGHT + LANE_GAP)
        parts.append(_bar(span, x, y, width, scale))
    waited_s = sum(s.waited_ms for s in timed) / 1000
    parts.append(
        f'<text x="{MARGIN}" y="{height - 4}">{len(timed)} steps · {span_s:.1f} s · '
        f"up to {lanes} at once · {waited_s:.1f} s waiting for the rate limit (hatched)</text></svg>"
    )
    return "".join(parts)


def _bar(span: Span, x: float, y: int, width: float, scale: float) -> str:
    """One step: its wait for the rate limit (hatched, pale) then its work (solid), one tooltip."""
    step = span.step
    colour = FAILED if step.status == WorkStatus.FAILED else COLOURS.get(step.type, "#888")
    wait_width = min(width, span.waited_ms / 1000 * scale)
    running = step.completed_at is None
    duration_ms = int((span.end - span.start).total_seconds() * 1000) if running else step.duration_ms
    worked_ms = max(0, (duration_ms or 0) - span.waited_ms) if running else step.work_ms
    waited, worked = _seconds(span.waited_ms), _seconds(worked_ms)
    so_far = " so far" if running else ""
    label = escape(
        f"{step.type}: {step.entity_name or 'path'} · {step.status} · {_seconds(duration_ms)}{so_far} "
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


def _label(seconds: float, span_s: float) -> str:
    """A tick's time: in milliseconds on a build shorter than 2 s, whose ticks would all read
    '0.0 s' in tenths of a second."""
    return f"{seconds * 1000:.0f} ms" if span_s < 2 else f"{seconds:.1f} s"
