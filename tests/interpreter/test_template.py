"""The built ``code-interpreter-v1`` root filesystem (built first where it is not): its server starts with
``START_CMD`` and works, with the image's own python3 and packages, in a chroot inside a private mount
namespace (``unshare -m``) so that nothing stays mounted.
"""

from __future__ import annotations

import time

from e2b_code_interpreter import Sandbox

from .conftest import needs_image

pytestmark = needs_image


def test_python_with_plots_and_dataframes(image_url: str):
    sandbox = Sandbox.create(debug=True, sandbox_url=image_url)
    execution = sandbox.run_code("import os, sys; (os.getcwd(), os.getuid(), sys.version_info[:2])")
    assert execution.text == "('/home/user', 1000, (3, 11))"
    plot = sandbox.run_code("import matplotlib.pyplot as plt\nplt.plot([1, 2], [3, 4])\nplt.show()")
    [figure] = plot.results
    assert figure.png and figure.chart.type == "line"
    frame = sandbox.run_code("import pandas as pd\npd.DataFrame({'a': [1]})")
    assert "<table" in frame.results[0].html
    # the server's own package is not on the user's path
    assert sandbox.run_code("import os; 'PYTHONPATH' in os.environ").text == "False"


def test_bash(image_url: str):
    sandbox = Sandbox.create(debug=True, sandbox_url=image_url)
    assert sandbox.run_code("whoami; pwd", language="bash").logs.stdout == ["user\n", "/home/user\n"]


def test_javascript(image_url: str):
    sandbox = Sandbox.create(debug=True, sandbox_url=image_url)
    started = time.monotonic()
    assert sandbox.run_code("Deno.cwd()", language="js").text == "/home/user"
    assert time.monotonic() - started < 10


def test_the_packages_agents_import(image_url: str):
    """What code written for E2B's template imports without asking, and a plot saved as an image by
    plotly through kaleido's own browser."""
    sandbox = Sandbox.create(debug=True, sandbox_url=image_url)
    modules = [
        "aiohttp",
        "bokeh",
        "bs4",
        "cv2",
        "docx",
        "e2b_charts",
        "gensim",
        "imageio",
        "joblib",
        "kaleido",
        "librosa",
        "nltk",
        "numpy",
        "openpyxl",
        "orjson",
        "pandas",
        "PIL",
        "plotly",
        "pytest",
        "pytz",
        "requests",
        "scipy",
        "seaborn",
        "skimage",
        "sklearn",
        "soundfile",
        "spacy",
        "sympy",
        "textblob",
        "tornado",
        "xarray",
        "xlrd",
    ]
    imported = sandbox.run_code(
        f"import importlib\n[importlib.import_module(m).__name__ for m in {modules!r}]"
    )
    assert imported.error is None, imported.error
    png = sandbox.run_code(
        "import plotly.graph_objects as go\nimage = go.Figure(go.Bar(y=[1, 3, 2])).to_image(format='png')\n"
        "image[:8] == b'\\x89PNG\\r\\n\\x1a\\n'",
        timeout=120,
    )
    assert png.error is None and png.text == "True", png
