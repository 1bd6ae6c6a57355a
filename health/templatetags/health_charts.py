"""Charts drawn on the server as SVG, so that pages need no script and no
network. The functions compute the geometry; the templates in
``templates/health/charts/`` draw it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from django import template

register = template.Library()

BAND_KEYS = ("very_unhealthy", "unhealthy", "neutral", "healthy", "very_healthy")
BAND_NAMES = {
    "very_unhealthy": "Very unhealthy",
    "unhealthy": "Unhealthy",
    "neutral": "Neutral",
    "healthy": "Healthy",
    "very_healthy": "Very healthy",
    "unscored": "Unscored",
}
# Light zones behind the score line; the same hues as the band badges.
ZONE_COLOURS = {
    "very_unhealthy": "#f6d0d0",
    "unhealthy": "#fbe3e3",
    "neutral": "#f1f1f1",
    "healthy": "#e0f2e3",
    "very_healthy": "#c8e6cc",
}
BAR_COLOURS = {
    "very_unhealthy": "#c62828",
    "unhealthy": "#ef8a8a",
    "neutral": "#c9c9c9",
    "healthy": "#7cc488",
    "very_healthy": "#2e7d32",
    "unscored": "#ffffff",
}

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 36, 12, 10, 24


def _month_starts(start: date, end: date) -> list[date]:
    day = date(start.year, start.month, 1)
    if day < start:
        day = (day + timedelta(days=32)).replace(day=1)
    months = []
    while day <= end:
        months.append(day)
        day = (day + timedelta(days=32)).replace(day=1)
    return months


def score_chart_geometry(
    points: Sequence[tuple[date, float | None]],
    limits: Sequence[float],
    start: date,
    end: date,
) -> dict:
    """Band zones, month ticks and the score line (split where a day is
    unscored) for a chart from ``start`` to ``end``."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    span = max((end - start).days, 1)

    def x(day: date) -> float:
        return round(LEFT + plot_w * (day - start).days / span, 1)

    def y(score: float) -> float:
        return round(TOP + plot_h * (1 - score / 100), 1)

    zones = []
    uppers = [*limits[1:], 100]
    for key, lower, upper in zip(BAND_KEYS, limits, uppers, strict=True):
        zones.append(
            {
                "name": BAND_NAMES[key],
                "colour": ZONE_COLOURS[key],
                "x": LEFT,
                "y": y(upper),
                "width": plot_w,
                "height": round(y(lower) - y(upper), 1),
                "label_y": y(lower) - 3,
                "lower": int(lower) if float(lower).is_integer() else lower,
            }
        )

    lines, current = [], []
    for day, score in sorted(points):
        if score is None:
            if current:
                lines.append(current)
            current = []
            continue
        current.append(f"{x(day)},{y(score)}")
    if current:
        lines.append(current)

    last = next(
        ((d, s) for d, s in sorted(points, reverse=True) if s is not None), None
    )
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "zones": zones,
        "lines": [" ".join(line) for line in lines],
        "dots": [
            {"x": x(d), "y": y(s)}
            for d, s in points
            if s is not None and len(points) < 40
        ],
        "last": {"x": x(last[0]), "y": y(last[1]), "score": last[1]} if last else None,
        "ticks": [
            {"x": x(month), "label": month.strftime("%b")}
            for month in _month_starts(start, end)
        ],
        "axis_y": HEIGHT - BOTTOM,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "empty": not any(s is not None for _, s in points),
    }


def band_mix_geometry(months: Sequence[tuple[str, dict[str, int]]]) -> dict:
    """A 100 % stacked bar per month, lowest band at the bottom."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(months), 1)
    bar_w = round(slot * 0.7, 1)
    bars = []
    for i, (label, mix) in enumerate(months):
        total = sum(mix.values())
        bar_x = round(LEFT + slot * i + (slot - bar_w) / 2, 1)
        segments, bottom = [], TOP + plot_h
        for key in (*BAND_KEYS, "unscored"):
            n = mix.get(key, 0)
            if not n:
                continue
            height = plot_h * n / total
            bottom -= height
            segments.append(
                {
                    "y": round(bottom, 1),
                    "height": round(height, 1),
                    "colour": BAR_COLOURS[key],
                    "title": f"{label}: {BAND_NAMES[key]} {n} ({100 * n / total:.0f}%)",
                }
            )
        bars.append(
            {
                "x": bar_x,
                "width": bar_w,
                "label": label,
                "label_x": round(bar_x + bar_w / 2, 1),
                "segments": segments,
                "total": total,
            }
        )
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "bars": bars,
        "axis_y": HEIGHT - BOTTOM,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "gridlines": [
            {"y": round(TOP + plot_h * (1 - p / 100), 1), "label": f"{p}%"}
            for p in (0, 25, 50, 75, 100)
        ],
        "legend": [
            {"name": BAND_NAMES[k], "colour": BAR_COLOURS[k]}
            for k in (*BAND_KEYS, "unscored")
        ],
    }


@register.inclusion_tag("health/charts/score_chart.html")
def score_chart(points, limits, start, end, title="Score"):
    return {"chart": score_chart_geometry(points, limits, start, end), "title": title}


@register.inclusion_tag("health/charts/band_mix_chart.html")
def band_mix_chart(months, title="Band mix"):
    return {"chart": band_mix_geometry(months), "title": title}
