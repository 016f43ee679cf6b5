"""The data behind a matplotlib figure, as the ``chart`` object of a result (spec §4).

Line, scatter, bar and pie axes are read back into their points, bars or wedges; other axes are reported
as ``unknown`` with their title. A figure with several axes is a ``superchart`` of one chart per axes.
Runs inside the kernel (loaded by ``kernel_setup.py``), so it needs nothing but matplotlib and numpy.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import numpy as np
from matplotlib import category, dates
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle, Wedge

_UNIT = re.compile(r"\s\((.*?)\)|\[(.*?)\]")


def figure_to_chart(figure: Figure) -> dict[str, Any] | None:
    """The chart of ``figure``, or None when it has no data to show."""
    axes = [ax for ax in figure.get_axes() if ax.has_data()]
    if not axes:
        return None
    if len(axes) == 1:
        return axes_to_chart(axes[0])
    title = figure.get_suptitle()
    return {"type": "superchart", "title": title or None, "elements": [axes_to_chart(ax) for ax in axes]}


def axes_to_chart(ax: Axes) -> dict[str, Any]:
    lines = [line for line in ax.lines if not _is_grid_line(line)]
    collections, patches = list(ax.collections), list(ax.patches)
    if lines and not collections and not patches:
        return _point_chart(ax, "line", [_line_points(line, n) for n, line in enumerate(lines)])
    if collections and not lines and not patches and all(isinstance(c, PathCollection) for c in collections):
        return _point_chart(ax, "scatter", [_scatter_points(c) for c in collections])
    if patches and not lines and not collections:
        if all(isinstance(p, Wedge) for p in patches):
            return _pie_chart(ax, patches)
        if all(isinstance(p, Rectangle) for p in patches) and ax.containers:
            return _bar_chart(ax)
    return {"type": "unknown", "title": ax.get_title() or None, "elements": []}


def _labels(ax: Axes) -> dict[str, Any]:
    chart: dict[str, Any] = {"title": ax.get_title() or None}
    for axis in ("x", "y"):
        label = getattr(ax, f"get_{axis}label")() or None
        match = _UNIT.search(label) if label else None
        chart[f"{axis}_label"] = label
        chart[f"{axis}_unit"] = (match.group(1) or match.group(2)) if match else None
    return chart


def _point_chart(ax: Axes, kind: str, elements: list[dict[str, Any]]) -> dict[str, Any]:
    chart = {"type": kind, **_labels(ax)}
    for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
        converter = axis.get_converter()
        is_date = isinstance(converter, dates.DateConverter | dates._SwitchableDateConverter)
        ticks = axis.get_majorticklocs()
        chart[f"{name}_ticks"] = [dates.num2date(t).isoformat() if is_date else float(t) for t in ticks]
        chart[f"{name}_tick_labels"] = [label.get_text() for label in axis.get_majorticklabels()]
        if is_date:
            chart[f"{name}_scale"] = "datetime"
        elif isinstance(converter, category.StrCategoryConverter):
            chart[f"{name}_scale"] = "categorical"
        else:
            chart[f"{name}_scale"] = axis.get_scale()
    chart["elements"] = elements
    return chart


def _line_points(line: Line2D, n: int) -> dict[str, Any]:
    label = line.get_label()
    if label.startswith("_child"):
        label = f"Line {n}"
    xs, ys = line.get_xdata(orig=True), line.get_ydata(orig=True)
    return {"label": label, "points": [[_plain(x), _plain(y)] for x, y in zip(xs, ys, strict=False)]}


def _scatter_points(collection: PathCollection) -> dict[str, Any]:
    return {
        "label": collection.get_label(),
        "points": [[_plain(x), _plain(y)] for x, y in np.asarray(collection.get_offsets())],
    }


def _bar_chart(ax: Axes) -> dict[str, Any]:
    chart = {"type": "bar", **_labels(ax)}
    elements = []
    horizontal = False
    for n, container in enumerate(c for c in ax.containers if isinstance(c, BarContainer)):
        group = container.get_label() or ""
        if group.startswith("_container"):
            group = f"Group {n}"
        horizontal = container.orientation == "horizontal"
        axis = ax.yaxis if horizontal else ax.xaxis
        names = {round(float(t), 6): label.get_text() for t, label in zip(
            axis.get_majorticklocs(), axis.get_majorticklabels(), strict=False
        )}  # fmt: skip
        for bar in container:
            center = bar.get_y() + bar.get_height() / 2 if horizontal else bar.get_x() + bar.get_width() / 2
            value = bar.get_width() if horizontal else bar.get_height()
            label = names.get(round(float(center), 6), _plain(center))
            elements.append({"label": str(label), "group": group, "value": _plain(value)})
    if horizontal:  # the categories are on the y axis: report them as x
        for a, b in (("x_label", "y_label"), ("x_unit", "y_unit")):
            chart[a], chart[b] = chart[b], chart[a]
    chart["elements"] = elements
    return chart


def _pie_chart(ax: Axes, wedges: list[Wedge]) -> dict[str, Any]:
    return {
        "type": "pie",
        "title": ax.get_title() or None,
        "elements": [
            {"label": w.get_label(), "angle": round(abs(w.theta2 - w.theta1), 6), "radius": _plain(w.r)}
            for w in wedges
        ],
    }


def _is_grid_line(line: Line2D) -> bool:
    """axhline/axvline-style helpers: two points on a horizontal or vertical line."""
    xs, ys = line.get_xdata(), line.get_ydata()
    return len(xs) == 2 and len(ys) == 2 and (xs[0] == xs[1] or ys[0] == ys[1])


def _plain(value: Any) -> Any:
    """A JSON value for a data point: numbers as int/float, dates as ISO 8601 strings."""
    if isinstance(value, np.datetime64):
        return str(value.astype("datetime64[s]"))
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value
