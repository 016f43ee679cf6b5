"""The data behind a matplotlib figure, as the ``chart`` object of a result (spec §4).

E2B's own extractor, the ``e2b_charts`` package, reads line, scatter and pie charts, names other plots
``unknown``, and gives every chart its title, axis labels and units. Box plots and bar charts are read
here instead, because ``e2b_charts`` 1.0.0 gets them wrong: it takes matplotlib's default box plot (boxes
drawn as lines) for a line chart of box outlines, labels horizontal boxes with the value axis's ticks,
reads vertical bars of equal height as horizontal ones, and pairs bars with tick labels by order rather
than by position. A figure with several axes is a ``superchart`` of one chart per axes.
Runs inside the kernel (loaded by ``kernel_setup.py``), next to the user's matplotlib.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

import numpy as np
from e2b_charts.charts import BarChart, BoxAndWhiskerChart, Chart, ChartType
from e2b_charts.charts.base import Chart2D
from e2b_charts.main import get_chart_from_ax
from e2b_charts.utils import is_grid_line
from e2b_charts.utils.rounding import dynamic_round
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.category import StrCategoryLocator
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import PathPatch, Rectangle
from matplotlib.ticker import FixedLocator

# A shape's or a line's points, as (x, y) or as (position, value) along a box plot's axes
_Points = list[tuple[float, float]]


def figure_to_chart(figure: Figure) -> dict[str, Any] | None:
    """The chart of ``figure``, or None when it has no data to show."""
    axes = figure.get_axes()
    if not any(ax.has_data() for ax in axes):
        return None
    with warnings.catch_warnings():  # e2b_charts' models warn about numpy ticks they keep as they are
        warnings.simplefilter("ignore")
        if len(axes) == 1:
            return axes_to_chart(axes[0])
        return {
            "type": ChartType.SUPERCHART.value,
            "title": figure.get_suptitle(),
            "elements": [axes_to_chart(ax) for ax in axes],
        }


def axes_to_chart(ax: Axes) -> dict[str, Any]:
    """One axes' chart: a box plot or bars read here, anything else by ``e2b_charts``."""
    boxes = _box_plot(ax)
    if boxes is not None:
        return boxes
    if _is_bar_chart(ax):
        return _bar_chart(ax)
    chart = get_chart_from_ax(ax)
    if isinstance(chart, BarChart | BoxAndWhiskerChart):  # rectangles or paths that are neither
        chart = Chart(ax=ax, type=ChartType.UNKNOWN)
    return chart.model_dump()


def _axis_labels(ax: Axes, kind: ChartType, *, swapped: bool = False) -> dict[str, Any]:
    """Title, axis labels and units as ``e2b_charts`` reads them; ``swapped`` reports the y axis as x."""
    chart = Chart2D(ax=ax, type=kind).model_dump()
    if swapped:
        for x, y in (("x_label", "y_label"), ("x_unit", "y_unit")):
            chart[x], chart[y] = chart[y], chart[x]
    return chart


def _label_at(axis: Axis, position: float) -> str:
    """The name of the bar or box at ``position``: the nearest tick's label when the ticks were placed
    for them (categories, ``set_xticks``, a box plot's positions), else the position itself."""
    locations = [float(loc) for loc in axis.get_majorticklocs()]
    if locations and isinstance(axis.get_major_locator(), FixedLocator | StrCategoryLocator):
        # formatted as a drawing would: the figure may not be drawn yet
        labels = axis.get_major_formatter().format_ticks(locations)
        distance, label = min(
            (abs(loc - position), label) for loc, label in zip(locations, labels, strict=True)
        )
        gaps = [b - a for a, b in itertools.pairwise(sorted(locations))]
        if not gaps or distance < min(gaps) / 2 or _same(distance, 0):
            return str(label)  # a FixedFormatter returns what it was given
    return f"{position:g}"


def _key(value: float) -> float:
    return round(value, 6)


def _rounded(value: float) -> float:
    """``value`` to eight significant digits, as ``e2b_charts`` reports a box's numbers."""
    return float(dynamic_round(value))


# Bars


def _is_bar_chart(ax: Axes) -> bool:
    return (
        any(isinstance(c, BarContainer) for c in ax.containers)
        and bool(ax.patches)
        and all(isinstance(p, Rectangle) for p in ax.patches)
        and all(is_grid_line(line) for line in ax.lines)
        and not ax.collections
        and not ax.images
    )


def _bar_chart(ax: Axes) -> dict[str, Any]:
    containers = [c for c in ax.containers if isinstance(c, BarContainer)]
    horizontal = containers[0].orientation == "horizontal"
    axis = ax.yaxis if horizontal else ax.xaxis
    elements = []
    for container in containers:
        group = container.get_label() or ""
        if group.startswith("_container"):
            group = f"Group {group.removeprefix('_container')}"
        for bar in container:
            if horizontal:
                position, value = bar.get_y() + bar.get_height() / 2, bar.get_width()
            else:
                position, value = bar.get_x() + bar.get_width() / 2, bar.get_height()
            label = _label_at(axis, float(position))
            elements.append({"label": label, "group": group, "value": float(value)})
    return {**_axis_labels(ax, ChartType.BAR, swapped=horizontal), "elements": elements}


# Box plots: matplotlib's ``bxp`` draws each box as an outline (a line, or a patch with
# ``patch_artist=True``), a median across it, two whiskers from its ends, caps, and the outliers as markers.


def _box_plot(ax: Axes) -> dict[str, Any] | None:
    """The box-and-whisker chart of ``ax``, or None when it is not a box plot."""
    if ax.collections or ax.images or not all(isinstance(p, PathPatch) for p in ax.patches):
        return None
    drawn = [line for line in ax.lines if len(line.get_xydata()) > 2 and not _markers_only(line)]
    shapes = [_closed(p.get_path().vertices) for p in ax.patches]
    shapes += [_closed(line.get_xydata()) for line in drawn]
    outlines = [shape for shape in shapes if shape is not None]
    if not outlines or len(outlines) < len(shapes):  # no box at all, or a shape that is not one
        return None
    lines = [line for line in ax.lines if line not in drawn]
    for vertical in (True, False):
        boxes = _boxes(outlines, lines, vertical)
        if boxes is not None:
            axis = ax.xaxis if vertical else ax.yaxis
            elements = [{"label": _label_at(axis, position), **stats} for position, stats in boxes]
            chart = _axis_labels(ax, ChartType.BOX_AND_WHISKER, swapped=not vertical)
            return {**chart, "elements": elements}
    return None


def _closed(vertices: Any) -> _Points | None:
    """The points of a closed outline, or None when the shape is open."""
    array = np.asarray(vertices, dtype=float)
    if len(array) < 5 or not np.allclose(array[0], array[-1], rtol=1e-9, atol=1e-12):
        return None
    return [(float(x), float(y)) for x, y in array]


def _boxes(outlines: list[_Points], lines: list[Line2D], vertical: bool) -> list[tuple[float, dict]] | None:
    """(position, statistics) of each box when every outline has a median, read with the boxes upright
    (``vertical``) or lying down; None otherwise. Boxes drawn twice at the same place count once."""
    found: dict[tuple[float, ...], tuple[float, dict]] = {}
    segments = [_oriented(line.get_xydata(), vertical) for line in lines]
    for outline in outlines:
        points = _oriented(outline, vertical)
        positions, values = [p for p, _ in points], [v for _, v in points]
        span = (min(positions), max(positions))
        center = (span[0] + span[1]) / 2
        stats = _box_stats(segments, lines, center, span, (min(values), max(values)))
        if stats is None:
            return None
        found.setdefault(tuple(_key(v) for v in (*span, *stats[:3])), (center, stats[3]))
    return sorted(found.values(), key=lambda box: box[0])


def _box_stats(
    segments: list[_Points],
    lines: list[Line2D],
    center: float,
    span: tuple[float, float],
    extent: tuple[float, float],
) -> tuple[float, float, float, dict[str, Any]] | None:
    """(first quartile, third quartile, median, the box's numbers) of the box whose outline covers
    positions ``span`` and values ``extent``, or None without a median."""
    whiskers = sorted(
        sorted(v for _, v in points)
        for points, line in zip(segments, lines, strict=True)
        if len(points) == 2 and not _markers_only(line) and all(_same(p, center) for p, _ in points)
    )
    whiskers = [w for w in whiskers if _within(w[0], extent) or _within(w[1], extent)]
    # a whisker starts at a quartile: a notch in the outline may reach beyond the quartiles
    low, q1 = whiskers[0] if whiskers else (extent[0], extent[0])
    q3, high = whiskers[-1] if len(whiskers) > 1 else (extent[1], extent[1])
    medians = [
        points[0][1]
        for points in segments
        if len(points) == 2
        and _same(points[0][1], points[1][1])
        and not _same(points[0][0], points[1][0])
        and all(_within(p, span) for p, _ in points)
        and _within(points[0][1], (q1, q3))
    ]
    if not medians:
        return None
    # a cap at a quartile (no whisker beyond it) lies across the box too: prefer a line that is not a cap
    median = next((m for m in medians if not (_same(m, low) or _same(m, high))), medians[0])
    fliers = {  # each set of outliers once, should the plot be drawn twice
        tuple(v for p, v in points if _same(p, center) and not _within(v, (low, high))): None
        for points, line in zip(segments, lines, strict=True)
        if _markers_only(line)
    }
    numbers = {
        "min": _rounded(low),
        "first_quartile": _rounded(q1),
        "median": _rounded(median),
        "third_quartile": _rounded(q3),
        "max": _rounded(high),
        "outliers": [_rounded(v) for values in fliers for v in values],
    }
    return q1, q3, median, numbers


def _oriented(points: Any, vertical: bool) -> _Points:
    """Points as (position, value): x is the position of an upright box, y of one lying down."""
    pairs = [(float(x), float(y)) for x, y in np.asarray(points, dtype=float)]
    return pairs if vertical else [(y, x) for x, y in pairs]


def _markers_only(line: Line2D) -> bool:
    return line.get_linestyle() in ("None", "none", "", " ")


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _within(value: float, bounds: tuple[float, float]) -> bool:
    low, high = bounds
    return low <= value <= high or _same(value, low) or _same(value, high)
