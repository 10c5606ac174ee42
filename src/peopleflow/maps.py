"""The pictures a retailer looks at: a dwell heat map and a flow map over the floor plan.

Both are drawn with matplotlib (its object API: no display needed) in floor-plan metres, with
the zones outlined and named; the flow map draws an arrow from zone to zone for each
transition, its width by count. No image of a person is used: only floor coordinates.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from peopleflow.analytics import Report
from peopleflow.config import FloorPlan

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _floor(plan: FloorPlan, title: str) -> tuple[Figure, Axes]:
    # matplotlib's object API, not pyplot: no global figure list to close, no backend to
    # switch (a caller's own pyplot figures are left alone), safe from any thread. Imported
    # here, when a map is drawn, so that its import (about half a second) is not paid by every
    # process that imports the report's modules (the service's start, the CLI's --help).
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 10 * plan.height / plan.width + 0.8), dpi=110)
    ax = fig.add_subplot()
    ax.set_xlim(0, plan.width)
    ax.set_ylim(0, plan.height)
    ax.set_aspect("equal")
    ax.set_xlabel("metres")
    ax.set_title(title)
    return fig, ax


def _zones(ax: Axes, plan: FloorPlan, fill: bool = False) -> None:
    from matplotlib.patches import Polygon

    for zone in plan.zones:
        ax.add_patch(
            Polygon(
                zone.polygon,
                closed=True,
                fill=fill,
                facecolor="#f1f1f1",
                edgecolor="#333333",
                lw=1.2,
                zorder=2 if not fill else 0,
            )
        )
        cx, cy = zone.polygon.mean(axis=0)
        ax.text(
            cx,
            cy,
            zone.name,
            ha="center",
            va="center",
            fontsize=8,
            zorder=6,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8},
        )


def draw_heatmap(report: Report, plan: FloorPlan, path: Path, title: str = "") -> Path:
    fig, ax = _floor(plan, title or "Dwell time (seconds per 0.5 m cell)")
    heat = np.ma.masked_equal(report.heatmap, 0)
    image = ax.imshow(
        heat,
        origin="lower",
        extent=(0, report.heatmap.shape[1] * report.cell, 0, report.heatmap.shape[0] * report.cell),
        cmap="inferno_r",
        zorder=1,
    )
    fig.colorbar(image, ax=ax, shrink=0.7, label="seconds")
    _zones(ax, plan)
    fig.savefig(path, bbox_inches="tight")
    return path


def draw_flowmap(report: Report, plan: FloorPlan, path: Path, title: str = "") -> Path:
    from matplotlib import colormaps
    from matplotlib.patches import FancyArrowPatch

    fig, ax = _floor(plan, title or "Flows between zones (arrow width: people)")
    _zones(ax, plan, fill=True)
    centres = {z.name: z.polygon.mean(axis=0) for z in plan.zones}
    top = max(report.transitions.values(), default=1)
    bend = 0.18  # A->B and B->A curve apart
    for (a, b), n in sorted(report.transitions.items(), key=lambda kv: kv[1]):
        arrow = FancyArrowPatch(
            tuple(centres[a]),
            tuple(centres[b]),
            connectionstyle=f"arc3,rad={bend}",
            arrowstyle="-|>",
            mutation_scale=12 + 10 * n / top,
            lw=0.8 + 7 * n / top,
            color=colormaps["viridis"](0.15 + 0.75 * n / top),
            alpha=0.85,
            zorder=4,
        )
        ax.add_patch(arrow)
        if n >= 0.15 * top:  # label the main flows only, at the middle of the curve
            (x1, y1), (x2, y2) = centres[a], centres[b]
            mx, my = (x1 + x2) / 2, (y1 + y2) / 2
            cx, cy = mx + bend * (y2 - y1), my - bend * (x2 - x1)  # arc3's control point
            ax.text(
                (mx + cx) / 2,
                (my + cy) / 2,
                str(n),
                fontsize=7,
                ha="center",
                va="center",
                zorder=5,
                bbox={"boxstyle": "circle,pad=0.15", "fc": "white", "ec": "#777777", "lw": 0.5},
            )
    fig.savefig(path, bbox_inches="tight")
    return path
