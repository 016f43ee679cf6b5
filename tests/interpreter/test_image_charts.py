"""Charts from the built ``code-interpreter-v1`` image: its own matplotlib and ``e2b_charts``, through the
official SDK. Skipped until the template is built (``python -m hutch.templates.code_interpreter``)."""

from __future__ import annotations

from e2b_code_interpreter import Sandbox
from e2b_code_interpreter.charts import BoxAndWhiskerChart, ChartType

from .conftest import needs_image

pytestmark = needs_image

CODE = """
import matplotlib.pyplot as plt
scores = {'A': [85, 90, 78, 92, 88], 'B': [95, 89, 76, 91, 84, 87]}
fig, ax = plt.subplots()
ax.boxplot(scores.values(), tick_labels=scores.keys())
ax.set_title('Exam Scores')
ax.set_xlabel('Class')
plt.show()
"""


def test_box_and_whisker_chart(image_url: str):
    sandbox = Sandbox.create(debug=True, sandbox_url=image_url)
    execution = sandbox.run_code(CODE)
    assert execution.error is None, execution.error
    assert execution.logs.stderr == []
    [figure] = execution.results
    assert figure.png
    chart = figure.chart
    assert isinstance(chart, BoxAndWhiskerChart) and chart.type == ChartType.BOX_AND_WHISKER
    assert (chart.title, chart.x_label) == ("Exam Scores", "Class")
    boxes = [(b.label, b.min, b.first_quartile, b.median, b.third_quartile, b.max) for b in chart.elements]
    assert boxes == [("A", 78, 85, 88, 90, 92), ("B", 84, 84.75, 88, 90.5, 95)]
    assert [b.outliers for b in chart.elements] == [[], [76]]
