"""``GET /files`` (download) and ``POST /files`` (upload) in the SDK's three shapes.

Uploads: multipart with one part (``?path=`` or the part's filename), multipart with many parts (each
``filename`` is the full destination, read raw, directories kept), or a raw ``application/octet-stream`` body
(``?path=``, optionally gzip). Files are written in place (so watchers see CREATE/WRITE on the real name),
parents created, ownership given to the caller, and ``X-Metadata-*`` headers stored as ``user.e2b.*``
xattrs. Downloads go out with ``sendfile``, or gzip-compressed when the client asks for gzip alone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import zlib
from urllib.parse import quote

from .. import paths
from ..auth import check_files_access
from ..entry import METADATA_PREFIX
from ..errors import HttpError, RpcError
from ..server import Request, Response
from ..users import User, lookup
from .common import send_json

READ_CHUNK = 256 * 1024
METADATA_HEADER = "x-metadata-"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _user(state, query: dict) -> User:
    name = query.get("username") or state.default_user
    user = lookup(name)
    if user is None:
        raise HttpError(401, f"invalid username: '{name}'")
    return user


def _resolve(path: str, user: User, state) -> str:
    try:
        return paths.resolve(path, user, state.default_workdir)
    except RpcError as err:
        raise HttpError(400, err.message) from None


def _io_error(err: OSError, path: str) -> HttpError:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return HttpError(507, f"not enough disk space to write '{path}'")
    if err.errno == errno.ENOENT:
        return HttpError(404, f"path '{path}' does not exist")
    if err.errno in (errno.EISDIR, errno.ENOTDIR):
        return HttpError(400, f"path '{path}' is a directory or has a file as a parent")
    if err.errno == errno.ENXIO:
        return HttpError(400, f"path '{path}' is not a regular file")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return HttpError(403, f"permission denied for '{path}'")
    return HttpError(500, f"error on '{path}': {err.strerror}")


# -- download ------------------------------------------------------------------------------------------------


def _disposition(name: str) -> str:
    """``inline`` with the file name: quoted when it is plain ASCII, else RFC 5987 ``filename*``."""
    if name and all(0x20 <= ord(c) < 0x7F for c in name):
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'inline; filename="{escaped}"'
    return "inline; filename*=utf-8''" + quote(name, safe="")


def _wants_gzip(header: str | None) -> bool:
    """gzip only when it is the one coding asked for (the SDK's ``read(gzip=True)``)."""
    if not header:
        return False
    codings = [part.split(";")[0].strip().lower() for part in header.split(",") if part.strip()]
    return codings == ["gzip"]


def _identity_refused(header: str | None) -> bool:
    for part in (header or "").split(","):
        name, _, params = part.partition(";")
        if name.strip().lower() in ("identity", "*") and re.search(r"q\s*=\s*0(\.0*)?\s*$", params):
            return True
    return False


async def download(request: Request, response: Response, state) -> None:
    query = request.query
    check_files_access(state, request.headers, query, "read")
    user = _user(state, query)
    path = _resolve(query.get("path", ""), user, state)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as err:
        raise _io_error(err, path) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise HttpError(400, f"path '{path}' is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise HttpError(400, f"path '{path}' is not a regular file")
        file = os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise
    with file:
        headers = [
            ("content-type", "application/octet-stream"),
            ("content-disposition", _disposition(os.path.basename(path))),
            ("accept-ranges", "bytes"),
        ]
        accept = request.headers.get("accept-encoding")
        if _wants_gzip(accept):
            await _send_gzip(response, file, headers)
            return
        if _identity_refused(accept):
            raise HttpError(406, "no acceptable content encoding: identity and gzip are supported")
        start, length, status = 0, st.st_size, 200
        wanted = _RANGE.match(request.headers.get("range", "").strip())
        if wanted and st.st_size > 0:
            first, last = wanted.groups()
            if first:
                start = int(first)
                end = min(int(last), st.st_size - 1) if last else st.st_size - 1
            elif last:
                start, end = max(st.st_size - int(last), 0), st.st_size - 1
            else:
                end = st.st_size - 1
            if start >= st.st_size or end < start:
                raise HttpError(416, f"range not satisfiable for a file of {st.st_size} bytes")
            length, status = end - start + 1, 206
            headers.append(("content-range", f"bytes {start}-{end}/{st.st_size}"))
        await response.start(status, headers, content_length=length)
        if length:
            await response.sendfile(file, start, length)
        await response.finish()


async def _send_gzip(response: Response, file, headers: list) -> None:
    await response.start(200, [*headers, ("content-encoding", "gzip")])
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    while True:
        chunk = file.read(READ_CHUNK)
        if not chunk:
            break
        await response.write(compressor.compress(chunk))
    await response.write(compressor.flush())
    await response.finish()


# -- upload --------------------------------------------------------------------------------------------------


def _metadata(request: Request) -> dict[str, str]:
    metadata = {}
    for name, value in request.header_list:
        if name.startswith(METADATA_HEADER):
            key = name[len(METADATA_HEADER) :].lower()
            if not key or not all(0x21 <= ord(c) <= 0x7E for c in key):
                raise HttpError(400, f"invalid metadata key {key!r}")
            if not all(0x20 <= ord(c) <= 0x7E for c in value):
                raise HttpError(400, f"invalid metadata value for key {key!r}: printable ASCII only")
            metadata[key] = value
    return metadata


class _Target:
    """One file being written for an upload."""

    def __init__(self, path: str, user: User) -> None:
        self.path = path
        self.user = user
        self.fd = -1
        try:
            if os.path.isdir(path):
                raise HttpError(400, f"path '{path}' is a directory")
            paths.ensure_parents(path, user)
            self.created = not os.path.lexists(path)
            # O_NONBLOCK: opening a FIFO must not stall the event loop waiting for a reader.
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NONBLOCK
            self.fd = os.open(path, flags, 0o644)
        except OSError as err:
            raise _io_error(err, path) from None

    def write(self, data) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as err:
            self.abort()
            raise _io_error(err, self.path) from None

    def finish(self, metadata: dict[str, str]) -> dict:
        try:
            if os.getuid() == 0:
                os.fchown(self.fd, self.user.uid, self.user.gid)
            _store_metadata(self.fd, metadata)
            _sync_off_root(self.fd, self.path)
        finally:
            os.close(self.fd)
            self.fd = -1
        result: dict = {"name": os.path.basename(self.path), "path": self.path, "type": "file"}
        if metadata:
            result["metadata"] = metadata
        return result

    def abort(self) -> None:
        """Give up on the file; one this upload created is removed rather than left half-written."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
            if self.created:
                with contextlib.suppress(OSError):
                    os.unlink(self.path)


def _sync_off_root(fd: int, path: str) -> None:
    """Sync a file that is not on the sandbox's root file system, such as a volume mounted in it, before the
    upload is answered: what the client was told is written outlives the sandbox and its node. The root
    file system dies with the sandbox, so its files are left to the kernel."""
    try:
        found = os.fstat(fd)
        if stat.S_ISREG(found.st_mode) and found.st_dev != os.stat("/").st_dev:
            os.fsync(fd)
    except OSError as err:
        raise _io_error(err, path) from None


def _store_metadata(fd: int, metadata: dict[str, str]) -> None:
    """Replace the file's ``user.e2b.*`` xattrs with ``metadata``."""
    try:
        existing = [n for n in os.listxattr(fd) if n.startswith(METADATA_PREFIX)]
    except OSError:
        existing = []
    for name in existing:
        if name[len(METADATA_PREFIX) :] not in metadata:
            os.removexattr(fd, name)
    for key, value in metadata.items():
        try:
            os.setxattr(fd, METADATA_PREFIX + key, value.encode("ascii"))
        except OSError as err:
            raise HttpError(500, f"cannot store metadata: {err.strerror}") from None


class _Decoder:
    """Undoes the request's Content-Encoding (identity or gzip)."""

    def __init__(self, encoding: str) -> None:
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self.inflater = None
        elif encoding in ("gzip", "x-gzip"):
            self.inflater = zlib.decompressobj(wbits=47)
        else:
            raise HttpError(400, f"unsupported content encoding {encoding!r}")

    def feed(self, chunk: bytes) -> bytes:
        if self.inflater is None:
            return chunk
        try:
            return self.inflater.decompress(chunk)
        except zlib.error:
            raise HttpError(400, "request body is not valid gzip") from None

    def end(self) -> None:
        if self.inflater is not None and not self.inflater.eof:
            raise HttpError(400, "request body ends inside the gzip stream")


async def upload(request: Request, response: Response, state) -> None:
    query = request.query
    check_files_access(state, request.headers, query, "write")
    user = _user(state, query)
    metadata = _metadata(request)
    decoder = _Decoder(request.headers.get("content-encoding", ""))
    header = request.headers.get("content-type", "")
    content_type = header.partition(";")[0].strip().lower()
    if content_type == "application/octet-stream":
        results = await _upload_raw(request, decoder, query, user, state, metadata)
    elif content_type == "multipart/form-data":
        results = await _upload_multipart(request, decoder, header, query, user, state, metadata)
    else:
        raise HttpError(400, f"unsupported content type {content_type!r}")
    if not results:
        raise HttpError(400, "no file in the request: send a part named 'file'")
    await send_json(response, 200, results)


async def _upload_raw(request, decoder, query, user, state, metadata) -> list[dict]:
    if not query.get("path"):
        raise HttpError(400, "the path query parameter is required for an octet-stream upload")
    target = _Target(_resolve(query["path"], user, state), user)
    try:
        async for chunk in request.stream():
            target.write(decoder.feed(chunk))
        decoder.end()
    except BaseException:
        target.abort()
        raise
    return [target.finish(metadata)]


async def _upload_multipart(request, decoder, content_type, query, user, state, metadata) -> list[dict]:
    # Imported on first use: python-multipart (and the email package it loads) costs ~2 MiB of memory in
    # every sandbox, and most uploads do not need it.
    from python_multipart.multipart import MultipartParser, parse_options_header

    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise HttpError(400, "multipart body without a boundary")
    results: list[dict] = []
    seen: set[str] = set()
    part = {"headers": {}, "field": b"", "value": b""}
    current: list[_Target | None] = [None]

    def on_part_begin() -> None:
        part["headers"] = {}
        part["field"], part["value"] = b"", b""

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part["value"] += data[start:end]

    def on_header_end() -> None:
        part["headers"][part["field"].decode("latin-1").lower()] = part["value"].decode("latin-1")
        part["field"], part["value"] = b"", b""

    def on_headers_finished() -> None:
        _, params = parse_options_header(part["headers"].get("content-disposition", ""))
        if params.get(b"name") != b"file":
            current[0] = None
            return
        if query.get("path"):
            if results or seen:
                raise HttpError(400, "the path query parameter names one file, but the body has several")
            destination = query["path"]
        else:
            raw_name = params.get(b"filename", b"")
            if not raw_name:
                raise HttpError(400, "a file part has no filename and there is no path parameter")
            destination = raw_name.decode("utf-8", "replace")
        path = _resolve(destination, user, state)
        if path in seen:
            raise HttpError(400, f"path '{path}' appears twice in one upload")
        seen.add(path)
        current[0] = _Target(path, user)

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if current[0] is not None:
            current[0].write(memoryview(data)[start:end])

    def on_part_end() -> None:
        if current[0] is not None:
            results.append(current[0].finish(metadata))
            current[0] = None

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(decoder.feed(chunk))
        decoder.end()
        parser.finalize()
    except HttpError:
        raise
    except Exception as err:
        raise HttpError(400, f"malformed multipart body: {err}") from None
    finally:
        if current[0] is not None:
            current[0].abort()
    return results
