"""What the seed's legacy calls return, built from the official SDK's results (shared by sync and async)."""

from __future__ import annotations

from dataclasses import dataclass

from e2b import CommandResult, EntryInfo, FileType


@dataclass(frozen=True)
class ProcessOutput:
    """The output of a finished process. A non-zero ``exit_code`` is a result here, not an exception."""

    stdout: str
    stderr: str
    exit_code: int


@dataclass(frozen=True)
class FileInfo:
    """One entry of a directory listing."""

    name: str
    is_dir: bool
    path: str


def process_output(result: CommandResult) -> ProcessOutput:
    """A ``ProcessOutput`` from a command's result (or its ``CommandExitException``, which is one)."""
    return ProcessOutput(stdout=result.stdout or "", stderr=result.stderr or "", exit_code=result.exit_code)


def file_info(entry: EntryInfo) -> FileInfo:
    """A ``FileInfo`` from an entry of ``files.list``."""
    return FileInfo(name=entry.name, is_dir=entry.type == FileType.DIR, path=entry.path)
