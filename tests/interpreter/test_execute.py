"""Running code through the official SDK: state, output streams, results, errors, rich formats."""

from __future__ import annotations

import base64

from e2b_code_interpreter import Sandbox


def test_state_is_kept_across_calls(sandbox: Sandbox):
    sandbox.run_code("counter = 40")
    execution = sandbox.run_code("counter += 2\ncounter")
    assert execution.text == "42"
    assert execution.error is None
    assert execution.results[0].is_main_result
    assert isinstance(execution.execution_count, int) and execution.execution_count > 1


def test_stdout_and_stderr_reach_callbacks_and_logs(sandbox: Sandbox):
    seen: list[tuple[str, bool]] = []
    execution = sandbox.run_code(
        "import sys\nprint('to out')\nprint('to err', file=sys.stderr)",
        on_stdout=lambda m: seen.append((m.line, m.error)),
        on_stderr=lambda m: seen.append((m.line, m.error)),
    )
    assert execution.logs.stdout == ["to out\n"]
    assert execution.logs.stderr == ["to err\n"]
    assert ("to out\n", False) in seen and ("to err\n", True) in seen
    assert execution.text is None


def test_a_str_result_loses_its_quotes(sandbox: Sandbox):
    assert sandbox.run_code("'hello'").text == "hello"


def test_errors_carry_name_value_and_traceback(sandbox: Sandbox):
    errors = []
    execution = sandbox.run_code("def f():\n    return 1 / 0\nf()", on_error=errors.append)
    assert execution.error is not None
    assert execution.error.name == "ZeroDivisionError"
    assert execution.error.value == "division by zero"
    assert "return 1 / 0" in execution.error.traceback
    assert "\x1b[" not in execution.error.traceback  # no terminal colours
    assert errors == [execution.error]
    # the context is still usable
    assert sandbox.run_code("2 * 21").text == "42"


def test_syntax_errors_are_errors(sandbox: Sandbox):
    execution = sandbox.run_code("def (")
    assert execution.error is not None and execution.error.name == "SyntaxError"


def test_matplotlib_figures_come_back_as_png_with_their_chart(sandbox: Sandbox):
    results = []
    execution = sandbox.run_code(
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3], [1, 4, 9], label='squares')\n"
        "plt.title('Squares')\n"
        "plt.xlabel('n')\n"
        "plt.show()",
        on_result=results.append,
    )
    assert execution.error is None, execution.error
    [figure] = execution.results
    assert results == [figure]
    assert not figure.is_main_result
    assert base64.b64decode(figure.png).startswith(b"\x89PNG\r\n\x1a\n")
    assert figure.text.startswith("<Figure size")
    assert figure.chart is not None
    assert figure.chart.type == "line"
    assert figure.chart.title == "Squares"
    assert figure.chart.x_label == "n"
    [line] = figure.chart.elements
    assert line.label == "squares"
    assert line.points == [(1, 1), (2, 4), (3, 9)]


def test_a_figure_left_open_is_shown_at_the_end_of_the_cell(sandbox: Sandbox):
    execution = sandbox.run_code("import matplotlib.pyplot as plt\nplt.bar(['a', 'b'], [3, 5])")
    formats = [set(result.formats()) for result in execution.results]
    assert any("png" in f for f in formats)
    [chart] = [r.chart for r in execution.results if r.chart]
    assert chart.type == "bar"
    assert [(bar.label, bar.value) for bar in chart.elements] == [("a", 3), ("b", 5)]


def test_dataframes_come_back_as_html_text_and_data(sandbox: Sandbox):
    execution = sandbox.run_code("import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})")
    [result] = execution.results
    assert result.is_main_result
    assert "<table" in result.html
    assert "a" in result.text and "x" in result.text
    assert result.data == {"a": [1, 2], "b": ["x", "y"]}


def test_display_adds_results_besides_the_main_one(sandbox: Sandbox):
    execution = sandbox.run_code(
        "from IPython.display import display, Markdown, HTML\n"
        "display(Markdown('# title'))\n"
        "display(HTML('<b>bold</b>'))\n"
        "7"
    )
    markdown, html, main = execution.results
    assert markdown.markdown == "# title" and not markdown.is_main_result
    assert html.html == "<b>bold</b>" and not html.is_main_result
    assert main.is_main_result and main.text == "7"
    assert execution.text == "7"


def test_lists_and_dicts_come_back_as_json(sandbox: Sandbox):
    result = sandbox.run_code("{'a': [1, 2], 'b': None}").results[0]
    assert result.json == {"a": [1, 2], "b": None}


def test_unknown_mime_types_go_to_extra(sandbox: Sandbox):
    result = sandbox.run_code(
        "from IPython.display import display\n"
        "display({'application/x-custom': 'payload', 'text/plain': 'custom'}, raw=True)"
    ).results[0]
    assert result.text == "custom"
    assert result.extra == {"application/x-custom": "payload"}


def test_missing_values_do_not_break_the_display(sandbox: Sandbox):
    frame = sandbox.run_code(
        "import pandas as pd\npd.DataFrame({'a': [1.5, None], 't': pd.to_datetime(['2024-01-02', None])})"
    )
    assert frame.error is None, frame.error
    assert frame.results[0].data == {"a": [1.5, None], "t": ["2024-01-02T00:00:00", None]}
    plot = sandbox.run_code("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, float('nan'), 3])")
    [figure] = [r for r in plot.results if r.png]
    assert figure.chart.elements[0].points == [(1, 1), (2, None), (3, 3)]


def test_a_pillow_image_saved_to_a_file_is_displayed(sandbox: Sandbox):
    execution = sandbox.run_code(
        "from PIL import Image\nimport tempfile, os\n"
        "path = os.path.join(tempfile.mkdtemp(), 'red.png')\n"
        "Image.new('RGB', (4, 4), 'red').save(path)\nos.path.getsize(path) > 0"
    )
    assert execution.error is None and execution.text == "True"
    [image] = [result for result in execution.results if not result.is_main_result]
    assert image.png
