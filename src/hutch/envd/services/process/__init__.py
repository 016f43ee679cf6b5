"""The ``process.Process`` Connect service: the handler table."""

from ...connect import client_stream, server_stream, unary
from .connect import connect
from .events import KEEPALIVE
from .input import close_stdin, send_input, stream_input
from .list import list_processes
from .signals import send_signal, update
from .start import start

ROUTES = {
    "/process.Process/Start": server_stream(start, KEEPALIVE, enforce_deadline=False),
    "/process.Process/Connect": server_stream(connect, KEEPALIVE),
    "/process.Process/List": unary(list_processes),
    "/process.Process/SendInput": unary(send_input),
    "/process.Process/StreamInput": client_stream(stream_input),
    "/process.Process/SendSignal": unary(send_signal),
    "/process.Process/CloseStdin": unary(close_stdin),
    "/process.Process/Update": unary(update),
}
