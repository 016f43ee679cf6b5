"""Drive a Hutch sandbox with the async SDK: commands, Python code, files and errors, with logging.

Start Hutch first (``make up`` or ``hutch up``); it writes ``.env.local`` with the client settings.
Run this from that directory or one below it::

    python examples/example_local.py
"""

from __future__ import annotations

import asyncio
import logging

from e2b import CommandExitException, NotFoundException

import hutch

log = logging.getLogger("example_local")

PYTHON_CODE = "import platform, sys; print(f'Python {platform.python_version()} on {sys.platform}')"


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sandbox = await hutch.AsyncSandbox.create()
    log.info("created sandbox: %s", sandbox.sandbox_id)
    try:
        result = await sandbox.commands.run("echo hello from $(hostname)")
        print(f"command: {result.stdout.strip()}")

        output = await sandbox.process.start_and_wait(f'python3 -c "{PYTHON_CODE}"')
        print(f"python: {output.stdout.strip()}")

        await sandbox.filesystem.write("/home/user/data/numbers.txt", "1\n2\n3\n")
        content = await sandbox.filesystem.read("/home/user/data/numbers.txt")
        print(f"file: {content.split()}")
        for entry in await sandbox.filesystem.list("/home/user/data"):
            print(f"listing: {entry.path} ({'dir' if entry.is_dir else 'file'})")

        try:
            await sandbox.commands.run("ls /does-not-exist")
        except CommandExitException as error:
            print(f"error handled: exit code {error.exit_code}: {error.stderr.strip()}")
        try:
            await sandbox.files.read("/home/user/missing.txt")
        except NotFoundException as error:
            print(f"error handled: {type(error).__name__}")
    finally:
        await sandbox.kill()
        log.info("killed sandbox: %s", sandbox.sandbox_id)


if __name__ == "__main__":
    asyncio.run(main())
