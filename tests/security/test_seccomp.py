"""The sandboxes' seccomp filter refuses io_uring: its rings run reads, writes, opens and connects that
seccomp never sees, and the kernel's io_uring code has been a steady source of container escapes. It
refuses a sandbox's processes the kernel's same-page merging too: merged with the identical pages of other
sandboxes, a page's write time would tell what they hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from hutch.runtime.container import seccomp
from tests.stack import Stack

IO_URING = ["io_uring_setup", "io_uring_enter", "io_uring_register"]

# io_uring_setup(8, &params) and io_uring_register(-1, 0, NULL, 0) on x86-64: the errno of each.
PROBE = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
params = ctypes.create_string_buffer(120)
results = []
for call, args in ((425, (8, params)), (427, (-1, 0, None, 0))):
    ctypes.set_errno(0)
    ret = libc.syscall(call, *args)
    results.append(f"{ret}/{ctypes.get_errno()}")
print(" ".join(results))
"""


# madvise(MADV_MERGEABLE), then madvise(MADV_DONTNEED) (still allowed), then prctl(PR_SET_MEMORY_MERGE), on
# a page of its own: the errno of each, and how many of its mappings are mergeable.
MERGE_PROBE = r"""
import ctypes, mmap
libc = ctypes.CDLL(None, use_errno=True)
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
page = mmap.mmap(-1, 4096)
address = ctypes.addressof(ctypes.c_char.from_buffer(page))
results = []
for call in (lambda: libc.madvise(address, 4096, 12), lambda: libc.madvise(address, 4096, 4),
             lambda: libc.prctl(67, 1, 0, 0, 0)):
    ctypes.set_errno(0)
    ret = call()
    results.append(f"{ret}/{ctypes.get_errno()}")
flags = [line.split()[1:] for line in open("/proc/self/smaps") if line.startswith("VmFlags:")]
print(" ".join(results), sum("mg" in f for f in flags))
"""


def _probe(stack: Stack, engine: str, code: str) -> list[str]:
    """What ``code`` prints in a new sandbox of ``engine``, as words."""
    sandbox = stack.create(engine)
    try:
        sandbox.files.write("/tmp/probe.py", code)
        return sandbox.commands.run("python3 /tmp/probe.py", timeout=30).stdout.split()
    finally:
        sandbox.kill()


@pytest.mark.parametrize("engine", ["crun", "gvisor"])
def test_a_sandbox_cannot_offer_its_memory_to_the_kernels_merging(stack: Stack, engine: str):
    assert _probe(stack, engine, MERGE_PROBE) == ["-1/1", "0/0", "-1/1", "0"]


@pytest.mark.parametrize("engine", ["crun", "gvisor"])
def test_io_uring_is_refused_in_a_sandbox(stack: Stack, engine: str):
    assert _probe(stack, engine, PROBE) == ["-1/1", "-1/1"]  # EPERM, as Docker's default profile answers


@pytest.mark.parametrize("section", [seccomp.oci_section, seccomp.gvisor_section])
def test_both_engines_refuse_io_uring(section):
    refused = {
        name
        for rule in section()["syscalls"]
        if rule["action"] == "SCMP_ACT_ERRNO" and rule.get("errnoRet") == seccomp.EPERM and "args" not in rule
        for name in rule["names"]
    }
    assert set(IO_URING) <= refused


def test_a_filter_compiled_before_is_not_reused(tmp_path: Path, monkeypatch):
    """The cached BPF is named by the policy it holds: one compiled without io_uring is never picked up."""
    current = seccomp.precompiled(tmp_path)
    if current is None:
        pytest.skip("libseccomp's Python binding is missing: crun compiles the OCI section itself")
    monkeypatch.setattr(seccomp, "DENIED", [name for name in seccomp.DENIED if name not in IO_URING])
    older = seccomp.precompiled(tmp_path)
    assert older is not None and older != current
    assert len(list(tmp_path.glob("seccomp-*.bpf"))) == 2
