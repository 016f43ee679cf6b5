"""``charts.figure_to_chart`` on figures drawn with matplotlib's Agg backend."""

from __future__ import annotations

import datetime

import matplotlib
import matplotlib.pyplot as plt
import pytest

from hutch.interpreter.charts import figure_to_chart

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_line_chart():
    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [0, 1, 4], label="squares")
    ax.plot([0, 1, 2], [0, 2, 4])
    ax.set_title("Growth")
    ax.set_xlabel("Time (s)")
    ax.set_ylabel("Distance [m]")
    chart = figure_to_chart(fig)
    assert chart["type"] == "line"
    assert chart["title"] == "Growth"
    assert (chart["x_label"], chart["x_unit"]) == ("Time (s)", "s")
    assert (chart["y_label"], chart["y_unit"]) == ("Distance [m]", "m")
    assert chart["x_scale"] == chart["y_scale"] == "linear"
    assert all(isinstance(t, float) for t in chart["x_ticks"])
    assert len(chart["x_tick_labels"]) == len(chart["x_ticks"])
    first, second = chart["elements"]
    assert first == {"label": "squares", "points": [[0, 0], [1, 1], [2, 4]]}
    assert second["label"] == "Line 1"


def test_dates_and_log_scales():
    fig, ax = plt.subplots()
    days = [datetime.date(2024, 1, d) for d in (1, 2, 3)]
    ax.plot(days, [1, 10, 100])
    ax.set_yscale("log")
    chart = figure_to_chart(fig)
    assert chart["x_scale"] == "datetime" and chart["y_scale"] == "log"
    assert datetime.datetime.fromisoformat(chart["x_ticks"][0])
    assert chart["elements"][0]["points"][0] == ["2024-01-01", 1]


def test_grid_like_lines_are_left_out():
    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [3, 1, 2], label="data")
    ax.axhline(1.5)
    chart = figure_to_chart(fig)
    assert [e["label"] for e in chart["elements"]] == ["data"]


def test_scatter_chart():
    fig, ax = plt.subplots()
    ax.scatter([1, 2], [3, 4], label="points")
    chart = figure_to_chart(fig)
    assert chart["type"] == "scatter"
    assert chart["elements"] == [{"label": "points", "points": [[1.0, 3.0], [2.0, 4.0]]}]


def test_bar_chart_with_categories_and_groups():
    fig, ax = plt.subplots()
    ax.bar(["a", "b", "c"], [1, 2, 3], label="sold")
    ax.set_xlabel("Product")
    ax.set_ylabel("Units")
    chart = figure_to_chart(fig)
    assert chart["type"] == "bar"
    assert (chart["x_label"], chart["y_label"]) == ("Product", "Units")
    assert chart["elements"] == [
        {"label": "a", "group": "sold", "value": 1},
        {"label": "b", "group": "sold", "value": 2},
        {"label": "c", "group": "sold", "value": 3},
    ]


def test_horizontal_bars_report_the_categories_as_x():
    fig, ax = plt.subplots()
    ax.barh(["x", "y"], [5, 6])
    ax.set_ylabel("Name")
    ax.set_xlabel("Score")
    chart = figure_to_chart(fig)
    assert (chart["x_label"], chart["y_label"]) == ("Name", "Score")
    assert [(e["label"], e["value"], e["group"]) for e in chart["elements"]] == [
        ("x", 5, "Group 0"),
        ("y", 6, "Group 0"),
    ]


def test_pie_chart():
    fig, ax = plt.subplots()
    ax.pie([75, 25], labels=["yes", "no"])
    ax.set_title("Votes")
    chart = figure_to_chart(fig)
    assert chart == {
        "type": "pie",
        "title": "Votes",
        "elements": [
            {"label": "yes", "angle": 270.0, "radius": 1},
            {"label": "no", "angle": 90.0, "radius": 1},
        ],
    }


def test_several_axes_make_a_superchart():
    fig, (left, right) = plt.subplots(1, 2)
    left.plot([1, 2], [3, 4])
    right.pie([1, 1])
    fig.suptitle("Both")
    chart = figure_to_chart(fig)
    assert chart["type"] == "superchart" and chart["title"] == "Both"
    assert [c["type"] for c in chart["elements"]] == ["line", "pie"]


def test_other_plots_are_unknown_and_empty_figures_have_none():
    fig, ax = plt.subplots()
    ax.imshow([[0, 1], [1, 0]])
    ax.set_title("Image")
    assert figure_to_chart(fig) == {"type": "unknown", "title": "Image", "elements": []}
    assert figure_to_chart(plt.figure()) is None
