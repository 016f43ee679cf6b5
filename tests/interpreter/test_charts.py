"""A matplotlib figure's ``chart``, through the official SDK: every chart type ``e2b_code_interpreter``
models comes back as its typed class with its elements; a figure that cannot be read has no chart."""

from __future__ import annotations

import base64
import datetime
import textwrap

import pytest
from e2b_code_interpreter import Sandbox
from e2b_code_interpreter.charts import (
    BarChart,
    BoxAndWhiskerChart,
    Chart,
    ChartType,
    LineChart,
    PieChart,
    ScaleType,
    ScatterChart,
    SuperChart,
)
from e2b_code_interpreter.models import Result

# Three classes' scores: B and C each have an outlier below their lower whisker.
SCORES = "{'A': [85, 90, 78, 92, 88], 'B': [95, 89, 76, 91, 84, 87], 'C': [75, 82, 88, 79, 86, 40]}"
# (label, min, first quartile, median, third quartile, max, outliers) of SCORES, as numpy computes them
SCORE_BOXES = [
    ("A", 78, 85, 88, 90, 92, []),
    ("B", 84, 84.75, 88, 90.5, 95, [76]),
    ("C", 75, 76, 80.5, 85, 88, [40]),
]


def shown(sandbox: Sandbox, code: str) -> Result:
    """The one figure ``code`` shows (after ``import matplotlib.pyplot as plt``), checked to be a PNG and
    to have run without an error or anything on stderr."""
    execution = sandbox.run_code("import matplotlib.pyplot as plt\n" + textwrap.dedent(code))
    assert execution.error is None, execution.error
    assert execution.logs.stderr == []
    [result] = execution.results
    assert base64.b64decode(result.png).startswith(b"\x89PNG")
    return result


def boxes(chart: BoxAndWhiskerChart) -> list[tuple]:
    return [
        (b.label, b.min, b.first_quartile, b.median, b.third_quartile, b.max, b.outliers)
        for b in chart.elements
    ]


def test_line_chart(sandbox: Sandbox):
    chart = shown(
        sandbox,
        """
        fig, ax = plt.subplots()
        ax.plot([0, 1, 2], [0, 1, 4], label='squares')
        ax.plot([0, 1, 2], [0, 2, 4])
        ax.axhline(2)  # a reference line, not data
        ax.set_title('Growth')
        ax.set_xlabel('Time (s)')
        ax.set_ylabel('Distance [m]')
        plt.show()
        """,
    ).chart
    assert isinstance(chart, LineChart) and chart.type == ChartType.LINE
    assert chart.title == "Growth"
    assert (chart.x_label, chart.x_unit) == ("Time (s)", "s")
    assert (chart.y_label, chart.y_unit) == ("Distance [m]", "m")
    assert chart.x_scale == chart.y_scale == ScaleType.LINEAR
    assert all(isinstance(t, float) for t in chart.x_ticks)
    assert len(chart.x_tick_labels) == len(chart.x_ticks) and "1.00" in chart.x_tick_labels
    assert [(line.label, line.points) for line in chart.elements] == [
        ("squares", [(0, 0), (1, 1), (2, 4)]),
        ("Line 1", [(0, 0), (1, 2), (2, 4)]),
    ]


def test_line_chart_with_dates_and_a_log_scale(sandbox: Sandbox):
    chart = shown(
        sandbox,
        """
        import datetime
        days = [datetime.date(2024, 1, d) for d in (1, 2, 3)]
        plt.plot(days, [1, 10, 100], label='growth')
        plt.yscale('log')
        plt.show()
        """,
    ).chart
    assert isinstance(chart, LineChart)
    assert (chart.x_scale, chart.y_scale) == (ScaleType.DATETIME, ScaleType.LOG)
    assert all(datetime.datetime.fromisoformat(t) for t in chart.x_ticks)
    [line] = chart.elements
    assert line.points == [("2024-01-01", 1), ("2024-01-02", 10), ("2024-01-03", 100)]


def test_line_chart_over_categories(sandbox: Sandbox):
    chart = shown(sandbox, "plt.plot(['mon', 'tue', 'wed'], [3, 1, 2])\nplt.show()").chart
    assert isinstance(chart, LineChart) and chart.x_scale == ScaleType.CATEGORICAL
    assert chart.x_tick_labels == ["mon", "tue", "wed"]
    assert chart.elements[0].points == [("mon", 3), ("tue", 1), ("wed", 2)]


def test_scatter_chart(sandbox: Sandbox):
    chart = shown(
        sandbox,
        """
        plt.scatter([1, 2, 3], [3, 4, 5], label='first')
        plt.scatter([1.5], [2.5], label='second')
        plt.xlabel('Weight (kg)')
        plt.show()
        """,
    ).chart
    assert isinstance(chart, ScatterChart) and chart.type == ChartType.SCATTER
    assert (chart.x_label, chart.x_unit) == ("Weight (kg)", "kg")
    assert [(s.label, s.points) for s in chart.elements] == [
        ("first", [(1, 3), (2, 4), (3, 5)]),
        ("second", [(1.5, 2.5)]),
    ]


def test_bar_chart(sandbox: Sandbox):
    chart = shown(
        sandbox,
        """
        plt.bar(['Author A', 'Author B', 'Author C'], [100, 200, 300])
        plt.title('Book Sales')
        plt.xlabel('Authors')
        plt.ylabel('Books [thousands]')
        plt.show()
        """,
    ).chart
    assert isinstance(chart, BarChart) and chart.type == ChartType.BAR
    assert (chart.title, chart.x_label, chart.y_label, chart.y_unit) == (
        "Book Sales",
        "Authors",
        "Books [thousands]",
        "thousands",
    )
    assert [(b.label, b.group, b.value) for b in chart.elements] == [
        ("Author A", "Group 0", 100),
        ("Author B", "Group 0", 200),
        ("Author C", "Group 0", 300),
    ]


@pytest.mark.parametrize(
    "draw",
    [
        "ax.bar(x - 0.2, first, 0.4, label='2023'); ax.bar(x + 0.2, second, 0.4, label='2024')",  # grouped
        "ax.bar(x, first, label='2023'); ax.bar(x, second, bottom=first, label='2024')",  # stacked
    ],
    ids=["grouped", "stacked"],
)
def test_bar_chart_with_groups(sandbox: Sandbox, draw: str):
    chart = shown(
        sandbox,
        f"""
        import numpy as np
        x, first, second = np.arange(3), [1, 2, 3], [4, 5, 6]
        fig, ax = plt.subplots()
        {draw}
        ax.set_xticks(x, ['p', 'q', 'r'])
        plt.show()
        """,
    ).chart
    assert isinstance(chart, BarChart)
    assert [(b.label, b.group, b.value) for b in chart.elements] == [
        ("p", "2023", 1),
        ("q", "2023", 2),
        ("r", "2023", 3),
        ("p", "2024", 4),
        ("q", "2024", 5),
        ("r", "2024", 6),
    ]


def test_horizontal_bars_of_equal_length(sandbox: Sandbox):
    """The categories are on the y axis: reported as x, as for upright bars."""
    horizontal = shown(
        sandbox, "plt.barh(['x', 'y'], [5, 5])\nplt.ylabel('Name')\nplt.xlabel('Score')\nplt.show()"
    ).chart
    upright = shown(sandbox, "plt.bar(['x', 'y'], [5, 5])\nplt.xlabel('Name')\nplt.show()").chart
    for chart in (horizontal, upright):
        assert isinstance(chart, BarChart) and chart.x_label == "Name"
        assert [(b.label, b.value) for b in chart.elements] == [("x", 5), ("y", 5)]
    assert horizontal.y_label == "Score"


def test_pie_chart(sandbox: Sandbox):
    chart = shown(
        sandbox, "plt.pie([75, 25], labels=['yes', 'no'], autopct='%1.0f%%')\nplt.title('Votes')\nplt.show()"
    ).chart
    assert isinstance(chart, PieChart) and chart.type == ChartType.PIE
    assert chart.title == "Votes"
    assert [(w.label, w.angle, w.radius) for w in chart.elements] == [("yes", 270, 1), ("no", 90, 1)]


@pytest.mark.parametrize(
    "options",
    ["", "patch_artist=True", "notch=True, showmeans=True", "showmeans=True, meanline=True"],
    ids=["lines", "patches", "notched", "mean-line"],
)
def test_box_and_whisker_chart(sandbox: Sandbox, options: str):
    chart = shown(
        sandbox,
        f"""
        scores = {SCORES}
        fig, ax = plt.subplots()
        ax.boxplot(scores.values(), tick_labels=scores.keys(), {options})
        ax.set_title('Exam Scores')
        ax.set_xlabel('Class')
        ax.set_ylabel('Score (points)')
        plt.show()
        """,
    ).chart
    assert isinstance(chart, BoxAndWhiskerChart) and chart.type == ChartType.BOX_AND_WHISKER
    assert (chart.title, chart.x_label, chart.y_label, chart.y_unit) == (
        "Exam Scores",
        "Class",
        "Score (points)",
        "points",
    )
    assert boxes(chart) == SCORE_BOXES
    assert all(isinstance(b.median, float) for b in chart.elements)


def test_box_and_whisker_chart_lying_down(sandbox: Sandbox):
    chart = shown(
        sandbox,
        f"""
        scores = {SCORES}
        plt.boxplot(scores.values(), tick_labels=scores.keys(), orientation='horizontal', patch_artist=True)
        plt.ylabel('Class')
        plt.xlabel('Score')
        plt.show()
        """,
    ).chart
    assert isinstance(chart, BoxAndWhiskerChart)
    assert (chart.x_label, chart.y_label) == ("Class", "Score")
    assert boxes(chart) == SCORE_BOXES


def test_box_plot_drawn_twice_counts_each_box_once(sandbox: Sandbox):
    chart = shown(
        sandbox,
        f"""
        scores = {SCORES}
        plt.boxplot(scores.values(), tick_labels=scores.keys())
        plt.boxplot(scores.values(), tick_labels=scores.keys(), patch_artist=True)
        plt.show()
        """,
    ).chart
    assert boxes(chart) == SCORE_BOXES


def test_several_axes_make_a_superchart(sandbox: Sandbox):
    chart = shown(
        sandbox,
        f"""
        fig, axes = plt.subplots(2, 2)
        axes[0, 0].plot([1, 2], [3, 4], label='line')
        axes[0, 1].bar(['a', 'b'], [1, 2])
        axes[1, 0].pie([1, 3], labels=['x', 'y'])
        axes[1, 1].boxplot({SCORES}['A'])
        fig.suptitle('All of them')
        plt.show()
        """,
    ).chart
    assert isinstance(chart, SuperChart) and chart.type == ChartType.SUPERCHART
    assert chart.title == "All of them"
    line, bar, pie, box = chart.elements
    assert isinstance(line, LineChart) and line.elements[0].points == [(1, 3), (2, 4)]
    assert isinstance(bar, BarChart) and [(b.label, b.value) for b in bar.elements] == [("a", 1), ("b", 2)]
    assert isinstance(pie, PieChart) and [(w.label, w.angle) for w in pie.elements] == [("x", 90), ("y", 270)]
    assert isinstance(box, BoxAndWhiskerChart) and boxes(box) == [("1", *SCORE_BOXES[0][1:])]


def test_other_plots_are_unknown_charts(sandbox: Sandbox):
    chart = shown(sandbox, "plt.imshow([[0, 1], [1, 0]])\nplt.title('Image')\nplt.show()").chart
    assert type(chart) is Chart
    assert (chart.type, chart.title, chart.elements) == (ChartType.UNKNOWN, "Image", [])


def test_a_figure_that_cannot_be_read_has_no_chart(sandbox: Sandbox):
    """e2b_charts cannot read a line chart without ticks: the figure still comes back, as a PNG."""
    result = shown(sandbox, "plt.plot([1, 2], [3, 4])\nplt.xticks([])\nplt.show()")
    assert result.chart is None


def test_a_figure_without_data_has_no_chart(sandbox: Sandbox):
    execution = sandbox.run_code("import matplotlib.pyplot as plt\nplt.subplots()")
    assert execution.error is None, execution.error
    assert execution.results and all(r.chart is None for r in execution.results)
