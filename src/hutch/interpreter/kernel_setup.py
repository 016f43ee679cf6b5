"""Run once inside every Python kernel (``runpy``, so nothing lands in the user's namespace).

Adds the display formats the code interpreter reports besides IPython's own: ``e2b/data`` (a pandas
DataFrame as columns), ``e2b/chart`` (a matplotlib figure's data, by ``charts.py`` next to this file with
E2B's ``e2b_charts`` package) and ``application/json`` for plain lists and dicts. And, as E2B's interpreter
does, a Pillow image saved to a file or shown with ``show()`` is also displayed (a PNG result), instead of
looking for an image viewer. Its output waits for the server rather than being dropped when the server lags.
"""

import enum
import importlib.util
import json
import math
import os
import sys

from IPython import get_ipython
from IPython.core.formatters import BaseFormatter, JSONFormatter
from traitlets import ObjectName, Unicode

_CHARTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "charts.py")


def _charts():
    module = sys.modules.get("_hutch_charts")
    if module is None:
        spec = importlib.util.spec_from_file_location("_hutch_charts", _CHARTS)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["_hutch_charts"] = module
    return module


class DataFormatter(BaseFormatter):
    format_type = Unicode("e2b/data")
    print_method = ObjectName("_repr_e2b_data_")
    _return_type = (dict,)

    def __call__(self, obj):
        pandas = sys.modules.get("pandas")  # a DataFrame exists only if the user imported pandas
        if pandas is None or not isinstance(obj, pandas.DataFrame):
            return super().__call__(obj)
        columns = obj.to_dict(orient="list")
        return _json_safe({str(name): [_cell(pandas, v) for v in values] for name, values in columns.items()})


class ChartFormatter(BaseFormatter):
    format_type = Unicode("e2b/chart")
    print_method = ObjectName("_repr_e2b_chart_")
    _return_type = (dict,)

    def __call__(self, obj):
        figure = getattr(sys.modules.get("matplotlib.figure"), "Figure", None)
        if figure is None or not isinstance(obj, figure):
            return super().__call__(obj)
        try:
            return _json_safe(_charts().figure_to_chart(obj))
        except Exception:  # a figure the extractor cannot read has no chart; its PNG still comes back
            return None


class PlainJSONFormatter(JSONFormatter):
    def __call__(self, obj):
        if isinstance(obj, (list, dict)):
            try:
                return json.loads(json.dumps(obj, default=_plain, allow_nan=False)), {"expanded": True}
            except (TypeError, ValueError):
                pass
        return super().__call__(obj)


def _cell(pandas, value):
    """A DataFrame cell as JSON: missing values (NaN, NaT, None, NA) as null, times as ISO 8601."""
    try:
        if pandas.isna(value):
            return None
    except (TypeError, ValueError):  # not a scalar
        pass
    return value.isoformat() if hasattr(value, "isoformat") else value


def _json_safe(value):
    """``value`` with what strict JSON cannot hold replaced: a message that fails to serialise would take
    the whole display (the PNG of a figure too) with it."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, enum.Enum):  # e2b_charts' chart types
        value = value.value
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _plain(value):
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    raise TypeError(type(value).__name__)


def _display_pillow_images():
    try:
        from PIL import Image, ImageShow
    except ImportError:  # no Pillow in this environment
        return
    from IPython.display import display

    save = Image.Image.save

    def save_and_display(self, fp, format=None, **params):
        save(self, fp, format, **params)
        if isinstance(fp, (str, bytes, os.PathLike)):
            display(self)

    Image.Image.save = save_and_display
    Image.Image.show = lambda self, title=None: display(self)
    ImageShow._viewers.clear()


def _wait_for_the_reader():
    """ipykernel's IOPub socket drops messages once a thousand wait for a reader that lags (a cell printing
    quickly on a busy machine): outputs went missing, and with the idle status the end of the execution.
    This makes it wait for the reader instead; set in the IOPub thread, which owns the socket."""
    import zmq

    thread = get_ipython().kernel.iopub_thread
    thread.schedule(lambda: thread.socket.setsockopt(zmq.XPUB_NODROP, 1))


_display_pillow_images()
_wait_for_the_reader()
_formatter = get_ipython().display_formatter
_formatter.formatters["e2b/data"] = DataFormatter(parent=_formatter)
_formatter.formatters["e2b/chart"] = ChartFormatter(parent=_formatter)
_formatter.formatters["application/json"] = PlainJSONFormatter(parent=_formatter)
