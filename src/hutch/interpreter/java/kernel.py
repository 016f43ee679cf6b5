"""A Jupyter kernel for Java: JShell in a JVM of its own (``Driver.java``, compiled into ``classes`` beside
this file), driven over two pipes.

Run by path (``runpy``) with ``-f CONNECTION_FILE``, as ipykernel is, so that this package is not put on the
kernel's ``sys.path``. Threads read the driver's replies and the JVM's own stdout and stderr (child
processes that inherit them, the JVM's messages): output goes out as ``stream`` messages as it comes, the
rest to the execution waiting for it. An interrupt (a control message) asks the driver to stop the running
code. The JVM runs in a session of its own, so that a signal to the kernel's process group does not reach
it, and ends when its request pipe closes; when the JVM ends, so does the kernel.
"""

from __future__ import annotations

import codecs
import json
import os
import queue
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import zmq
from ipykernel.kernelapp import IPKernelApp
from ipykernel.kernelbase import Kernel

CLASSES = Path(__file__).with_name("classes")
# A cell whose first line starts with this sets or unsets environment variables: each line is ``set`` and
# a JSON object (names to values) or ``unset`` and a JSON list of names. ``hutch.interpreter.languages``
# writes them.
ENV_DIRECTIVE = "//hutch:env "
JVM_OPTIONS = [
    "-XX:+UseSerialGC",
    "-XX:-UsePerfData",
    "-Dfile.encoding=UTF-8",
    "-Djava.awt.headless=true",
    # the driver changes the JVM's environment in place (``Environment.java``)
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
]
# JDK 17's foreign linker, for the C library's environment; the JVM warns on stderr that it incubates.
FOREIGN = "jdk.incubator.foreign"
FOREIGN_OPTIONS = [f"--add-modules={FOREIGN}", "--enable-native-access=ALL-UNNAMED"]
FOREIGN_WARNING = f"WARNING: Using incubator modules: {FOREIGN}\n".encode()
_HEADER = struct.Struct(">cI")
_LENGTH = struct.Struct(">I")
_STRING_TYPES = {"String", "java.lang.String", "char", "Character", "java.lang.Character"}
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "'": "'", "\\": "\\"}


def jvm_command(java: str) -> list[str]:
    """The command line of the driver's JVM, with the foreign linker where the JDK has it."""
    release = Path(java).resolve().parent.parent / "release"
    try:
        foreign = FOREIGN in release.read_text()
    except OSError:
        foreign = False
    options = JVM_OPTIONS + (FOREIGN_OPTIONS if foreign else [])
    return [java, *options, "-cp", str(CLASSES), "Driver"]


class Driver:
    """The JVM running ``Driver``: requests go in on one pipe, replies come back on another."""

    def __init__(self) -> None:
        java = shutil.which("java") or "java"
        requests_in, requests_out = os.pipe()
        replies_in, replies_out = os.pipe()
        command = jvm_command(java)
        self.warns = FOREIGN_OPTIONS[0] in command
        self.process = subprocess.Popen(
            [*command, str(requests_in), str(replies_out)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(requests_in, replies_out),
            start_new_session=True,
        )
        os.close(requests_in)
        os.close(replies_out)
        self._requests = os.fdopen(requests_out, "wb", buffering=0)
        self._replies = os.fdopen(replies_in, "rb")
        self._lock = threading.Lock()

    def send(self, kind: bytes, payload: bytes = b"") -> None:
        with self._lock:
            self._requests.write(_HEADER.pack(kind, len(payload)) + payload)

    def replies(self) -> Iterator[tuple[bytes, bytes]]:
        """The driver's replies, until it ends."""
        while len(header := self._replies.read(_HEADER.size)) == _HEADER.size:
            kind, size = _HEADER.unpack(header)
            payload = self._replies.read(size)
            if len(payload) < size:
                return
            yield kind, payload

    def close(self) -> None:
        with self._lock:
            self._requests.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def chunks(stream: IO[bytes], skip: bytes = b"") -> Iterator[bytes]:
    """What is written to ``stream``, as it comes, without ``skip`` if it is the first line."""
    if skip:
        first = stream.readline()
        if first != skip:
            yield first
    while chunk := stream.read1(1 << 16):  # type: ignore[attr-defined]
        yield chunk


def fields(payload: bytes) -> list[str]:
    """The strings of a reply, each a 4-byte length and UTF-8."""
    values, offset = [], 0
    while offset < len(payload):
        (size,) = _LENGTH.unpack_from(payload, offset)
        offset += _LENGTH.size
        values.append(payload[offset : offset + size].decode("utf-8", "replace"))
        offset += size
    return values


def shown(type_name: str, display: str) -> str:
    """The text of a value: JShell's display text, except that a string or a char is shown as it is,
    without the quotes and escapes JShell adds."""
    if type_name not in _STRING_TYPES or len(display) < 2:
        return display
    text, out, index = display[1:-1], [], 0
    while index < len(text):
        escaped = text[index + 1 : index + 4] if text[index] == "\\" else ""
        if len(escaped) == 3 and all(c in "01234567" for c in escaped):
            out.append(chr(int(escaped, 8)))
            index += 4
        elif escaped and escaped[0] in _ESCAPES:
            out.append(_ESCAPES[escaped[0]])
            index += 2
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def env_requests(code: str) -> list[tuple[bytes, bytes]] | None:
    """The driver requests of a cell of environment directives, or None for any other code."""
    lines = code.split("\n")
    if not lines[0].startswith(ENV_DIRECTIVE):
        return None
    requests = []
    for line in lines:
        action, _, argument = line.removeprefix(ENV_DIRECTIVE).partition(" ")
        if action == "set":
            values: dict[str, str] = json.loads(argument)
            texts = [text for pair in values.items() for text in pair]
            requests.append((b"v", "\0".join(texts).encode("utf-8", "replace")))
        elif action == "unset":
            names: list[str] = json.loads(argument)
            requests.append((b"u", "\0".join(names).encode("utf-8", "replace")))
    return requests


class JavaKernel(Kernel):
    implementation = "hutch-java"
    implementation_version = "1.0"
    language = "java"
    language_version = ""
    language_info = {"name": "java", "mimetype": "text/x-java-source", "file_extension": ".java"}
    banner = "Java (JShell)"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._driver = Driver()
        self._answers: queue.Queue[tuple[bytes, bytes]] = queue.Queue()
        self._output_parent: dict[str, Any] = {}
        self._closing = False
        # past its high-water mark the IOPub socket drops messages for a reader that lags: wait instead
        self.iopub_thread.schedule(lambda: self.iopub_thread.socket.setsockopt(zmq.XPUB_NODROP, 1))
        process = self._driver.process
        skip = FOREIGN_WARNING if self._driver.warns else b""
        for name, target, args in (
            ("replies", self._read_replies, ()),
            ("stdout", self._forward, ("stdout", chunks(process.stdout))),  # type: ignore[arg-type]
            ("stderr", self._forward, ("stderr", chunks(process.stderr, skip))),  # type: ignore[arg-type]
        ):
            threading.Thread(target=target, args=args, name=f"java-{name}", daemon=True).start()

    def _publish(self, name: str, text: str) -> None:
        """Output, for the execution that runs (or ran last): from other threads, so its parent is given."""
        content = {"name": name, "text": text}
        self.session.send(
            self.iopub_socket, "stream", content, parent=self._output_parent, ident=self._topic("stream")
        )

    def _forward(self, name: str, source: Iterator[bytes]) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        for chunk in source:
            if text := decoder.decode(chunk):
                self._publish(name, text)

    def _read_replies(self) -> None:
        decoders = {kind: codecs.getincrementaldecoder("utf-8")("replace") for kind in (b"o", b"e")}
        for kind, payload in self._driver.replies():
            if kind in decoders:
                if text := decoders[kind].decode(payload):
                    self._publish("stdout" if kind == b"o" else "stderr", text)
            else:
                self._answers.put((kind, payload))
        self._driver_ended()

    def _driver_ended(self) -> None:
        """The JVM is gone (``System.exit``, a crash): so is the kernel, once its output is out."""
        status = self._driver.process.wait()
        if self._closing:
            return
        flushed = threading.Event()
        self.iopub_thread.schedule(flushed.set)
        flushed.wait(1)
        time.sleep(0.05)  # for zmq to write what it was handed
        self.log.warning("the JVM exited with status %s", status)
        os._exit(1)

    async def do_execute(  # type: ignore[override]
        self,
        code: str,
        silent: bool,
        store_history: bool = True,
        user_expressions: dict[str, Any] | None = None,
        allow_stdin: bool = False,
        **_: Any,
    ) -> dict[str, Any]:
        self._output_parent = self.get_parent()
        requests = env_requests(code)
        if requests is None:
            requests = [(b"c", code.encode("utf-8", "replace"))]
        result = None
        error = None
        for kind, payload in requests:
            self._driver.send(kind, payload)
            while (answer := self._answers.get())[0] != b"d":
                if answer[0] == b"r":
                    result = shown(*fields(answer[1]))
                elif answer[0] == b"x":
                    error = fields(answer[1])
            if error is not None:
                break
        if error is not None:
            name, value, traceback = error
            content = {
                "ename": name,
                "evalue": value,
                "traceback": traceback.split("\n") if traceback else [],
            }
            if not silent:
                self.send_response(self.iopub_socket, "error", content)
            return {"status": "error", "execution_count": self.execution_count, **content}
        if result is not None and not silent:
            data = {"execution_count": self.execution_count, "data": {"text/plain": result}, "metadata": {}}
            self.send_response(self.iopub_socket, "execute_result", data)
        return {
            "status": "ok",
            "execution_count": self.execution_count,
            "payload": [],
            "user_expressions": {},
        }

    async def interrupt_request(self, stream: Any, ident: Any, parent: Any) -> None:
        self._driver.send(b"s")
        self.session.send(stream, "interrupt_reply", {"status": "ok"}, parent, ident=ident)

    async def do_shutdown(self, restart: bool) -> dict[str, Any]:  # type: ignore[override]
        self._closing = True
        self._driver.close()
        return {"status": "ok", "restart": restart}


if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=JavaKernel)
