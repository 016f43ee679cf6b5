"""Checkpoints that new gVisor sandboxes are restored from (a fork's copies, a snapshot's sandboxes): a
root-only directory with runsc's image of a sandbox (``image/``: its memory, processes and kernel state),
its boot id, and the envd access token that the image's envd holds, which a restored sandbox presents
once to set its own."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ...private_files import DIRECTORY_MODE, FILE_MODE


@dataclass(frozen=True)
class Checkpoint:
    directory: Path

    @property
    def image(self) -> Path:
        return self.directory / "image"

    @property
    def boot_id(self) -> Path:
        return self.directory / "boot_id"

    def create(self, token: str | None) -> None:
        """Make the (new) directory, owned by root alone, with the token of the sandbox to checkpoint."""
        self.directory.mkdir(mode=DIRECTORY_MODE, parents=True)
        self.image.mkdir(mode=DIRECTORY_MODE)
        descriptor = os.open(self.directory / "token", os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(descriptor, "w") as file:
            file.write(token or "")

    def token(self) -> str | None:
        """The access token the checkpointed envd holds."""
        return (self.directory / "token").read_text() or None
