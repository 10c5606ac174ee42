"""The plan as a picture (PNG): one column per pipeline, one box per task, arrows for data.

Drawn with matplotlib (Agg: no display needed), so no Graphviz install is required; the same
plan as Graphviz source is ``Plan.to_dot()``. Arrows that cross between columns are
shared-memory rings; arrows inside a column pass Python objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from conveyor.graph import Graph

# What a drawing reads of a plan (``conveyor.plan.Plan`` draws itself with this module, so
# this module does not import it back).


class _Unit(Protocol):
    @property
    def task(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def cost(self) -> float: ...


class _Pipeline(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def resource(self) -> str: ...
    @property
    def load(self) -> float: ...
    @property
    def units(self) -> Sequence[_Unit]: ...


class Drawable(Protocol):
    @property
    def graph(self) -> Graph: ...
    @property
    def pipelines(self) -> Sequence[_Pipeline]: ...
    @property
    def bottleneck(self) -> _Pipeline: ...


_COLORS = {"cpu": "#dbe9f6", "gpu": "#dff3e3"}
_BOX_W, _BOX_H, _COL_W, _ROW_H = 2.6, 0.6, 3.6, 1.0


def draw_plan(plan: Drawable, path: str | Path) -> Path:
    """Write ``plan`` as a PNG to ``path``; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    rows = max(len(p.units) for p in plan.pipelines)
    width = max(4.0, _COL_W * len(plan.pipelines))
    height = 1.6 + _ROW_H * rows
    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    ax.set_xlim(0, width)
    ax.set_ylim(-0.5, height)
    ax.axis("off")
    top = plan.bottleneck.load or 1.0
    centre: dict[str, list[tuple[float, float]]] = {}
    for col, p in enumerate(plan.pipelines):
        x = col * _COL_W + 0.4
        frame_h = _ROW_H * len(p.units) + 0.3
        y0 = height - 1.1 - frame_h
        ax.add_patch(
            FancyBboxPatch(
                (x - 0.2, y0),
                _BOX_W + 0.4,
                frame_h,
                boxstyle="round,pad=0.05",
                facecolor=_COLORS[p.resource],
                edgecolor="#555555",
                linewidth=1.2 if p is not plan.bottleneck else 2.5,
            )
        )
        ax.text(
            x + _BOX_W / 2,
            height - 0.55,
            f"{p.name}\n{p.load * 1e3:.2f} ms/item ({100 * p.load / top:.0f}%)",
            ha="center",
            va="center",
            fontsize=9,
            fontweight="bold" if p is plan.bottleneck else "normal",
        )
        for row, u in enumerate(p.units):
            y = height - 1.1 - 0.15 - _ROW_H * row - _BOX_H - 0.2
            ax.add_patch(
                FancyBboxPatch(
                    (x, y),
                    _BOX_W,
                    _BOX_H,
                    boxstyle="round,pad=0.02",
                    facecolor="white",
                    edgecolor="#333333",
                )
            )
            ax.text(
                x + _BOX_W / 2,
                y + _BOX_H / 2,
                f"{u.label}\n{u.cost * 1e3:.2f} ms",
                ha="center",
                va="center",
                fontsize=8,
            )
            centre.setdefault(u.task, []).append((x + _BOX_W / 2, y + _BOX_H / 2))
    for e in plan.graph.edges:
        for a in centre[e.producer]:
            for b in centre[e.consumer]:
                cross = abs(a[0] - b[0]) > 1e-6
                # Between columns: leave from the side facing the consumer, not the centre.
                side = (_BOX_W / 2 if b[0] > a[0] else -_BOX_W / 2) if cross else 0.0
                # Within a column: from the producer's edge to the consumer's facing edge.
                rise = 0.0 if cross else (_BOX_H / 2 if b[1] < a[1] else -_BOX_H / 2)
                ax.add_patch(
                    FancyArrowPatch(
                        (a[0] + side, a[1] - rise),
                        (b[0] - side, b[1] + rise),
                        arrowstyle="-|>",
                        mutation_scale=12,
                        color="#c0392b" if cross else "#333333",
                        linestyle="--" if cross else "-",
                        connectionstyle="arc3,rad=0.15" if not cross else "arc3,rad=0.05",
                        shrinkA=2,
                        shrinkB=2,
                    )
                )
    ax.text(
        0.2,
        -0.3,
        "solid: same process (no copy)   dashed red: shared-memory ring between processes",
        fontsize=7,
        color="#555555",
    )
    out = Path(path)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    return out
