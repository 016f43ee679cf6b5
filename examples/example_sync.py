"""Run commands and use files in a Hutch sandbox with the synchronous SDK.

Start Hutch first (``make up`` or ``hutch up``); it writes ``.env.local`` with the client settings.
Run this from that directory or one below it::

    python examples/example_sync.py
"""

from __future__ import annotations

import hutch


def main() -> None:
    with hutch.Sandbox.create() as sandbox:
        print(f"sandbox: {sandbox.sandbox_id}")

        result = sandbox.commands.run('echo "$(whoami) on $(uname -s)"')
        print(f"command: {result.stdout.strip()}")

        sandbox.files.write("/home/user/hello.txt", "Hello from Hutch!\n")
        print(f"file: {sandbox.files.read('/home/user/hello.txt').strip()}")
        names = sorted(entry.name for entry in sandbox.files.list("/home/user"))
        print(f"listing: {', '.join(names)}")

        # The legacy call of older examples, on the same sandbox.
        output = sandbox.process.start_and_wait("python3 --version")
        print(f"legacy: {output.stdout.strip()} (exit code {output.exit_code})")
    print("killed")


if __name__ == "__main__":
    main()
