"""The sandbox's seccomp policy, and its precompiled BPF form.

The policy allows by default and refuses (EPERM) what a sandbox never needs and an attacker wants:
kernel modules, kexec, mounts, new namespaces, ptrace of other processes' memory, BPF, perf, keyrings, the
clock, swap, reboot and io_uring (its rings run operations that seccomp never sees; refused with EPERM as
in Docker's and containerd's default profiles, so programs fall back to ordinary calls), and the kernel's
same-page merging of a sandbox's own memory (``madvise(MADV_MERGEABLE)``, ``prctl(PR_SET_MEMORY_MERGE)``:
merged with identical pages of other sandboxes, a page's write time tells what they hold). ``clone`` with
namespace flags is refused; ``clone3`` answers ENOSYS so libc falls back to ``clone`` (whose flags can be
checked). The precompiled filter's cache key covers the policy, so a changed policy is compiled anew.

crun compiles an OCI seccomp section at every start (~20 ms here); a precompiled filter passed through the
``run.oci.seccomp_bpf_data`` annotation skips that. The filter is compiled once with libseccomp's Python
binding (Debian's python3-seccomp, for the system interpreter) and cached; without it the OCI section is
used.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path

DENIED = [
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module",
    "finit_module", "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms", "init_module",
    "io_uring_enter", "io_uring_register", "io_uring_setup", "ioperm", "iopl", "kcmp", "kexec_file_load",
    "kexec_load", "keyctl", "lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at",
    "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open", "pivot_root", "process_vm_readv",
    "process_vm_writev", "ptrace", "query_module", "quotactl", "reboot", "request_key", "setns",
    "settimeofday", "adjtimex", "stime", "swapoff", "swapon", "syslog", "umount", "umount2", "unshare",
    "uselib", "userfaultfd", "vhangup",
]  # fmt: skip
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME: clone is refused if any is set,
# so one rule per flag (a masked compare against all of them at once would match only all together).
NAMESPACE_FLAGS = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x80]
# (call, argument, value) refused when the argument is the value: madvise's MADV_MERGEABLE, prctl's
# PR_SET_MEMORY_MERGE.
REFUSED_ARGUMENTS = [("madvise", 2, 12), ("prctl", 0, 67)]
EPERM = 1
ENOSYS = 38

_COMPILER = r"""
import json, sys, seccomp
policy = json.load(sys.stdin)
f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
for name in policy["denied"]:
    try:
        f.add_rule(seccomp.ERRNO(policy["eperm"]), name)
    except Exception:
        pass  # not a syscall on this architecture
for flag in policy["ns"]:
    f.add_rule(seccomp.ERRNO(policy["eperm"]), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
for name, index, value in policy["arguments"]:
    f.add_rule(seccomp.ERRNO(policy["eperm"]), name, seccomp.Arg(index, seccomp.EQ, value))
f.add_rule(seccomp.ERRNO(policy["enosys"]), "clone3")
f.export_bpf(sys.stdout)
"""


def oci_section() -> dict:
    """The same policy as an OCI ``linux.seccomp`` section (compiled by crun at start)."""
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
        "syscalls": [
            {"names": DENIED, "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM},
            *(
                {
                    "names": ["clone"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": EPERM,
                    "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
                }
                for flag in NAMESPACE_FLAGS
            ),
            *(
                {
                    "names": [name],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": EPERM,
                    "args": [{"index": index, "value": value, "op": "SCMP_CMP_EQ"}],
                }
                for name, index, value in REFUSED_ARGUMENTS
            ),
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
        ],
    }


def gvisor_section() -> dict:
    """The policy for gVisor's Sentry (runsc ``--oci-seccomp``). The Sentry answers every refusal with
    EPERM whatever ``errnoRet`` says, and glibc gives up on threads when ``clone3`` answers EPERM, so
    ``clone3`` is left to the Sentry: namespaces made through it exist only inside the Sentry."""
    section = oci_section()
    section["syscalls"] = [rule for rule in section["syscalls"] if rule["names"] != ["clone3"]]
    return section


def precompiled(cache_dir: Path, python: str = "/usr/bin/python3") -> str | None:
    """Base64 of the compiled BPF filter, built once and cached; None when libseccomp's binding is missing."""
    policy = {
        "denied": DENIED,
        "ns": NAMESPACE_FLAGS,
        "arguments": REFUSED_ARGUMENTS,
        "eperm": EPERM,
        "enosys": ENOSYS,
    }
    key = hashlib.sha256(json.dumps(policy, sort_keys=True).encode() + _COMPILER.encode()).hexdigest()[:16]
    cached = cache_dir / f"seccomp-{key}.bpf"
    if not cached.exists():
        try:
            result = subprocess.run(
                [python, "-c", _COMPILER], input=json.dumps(policy).encode(), capture_output=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        if result.returncode != 0 or not result.stdout:
            return None
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".partial")
        partial.write_bytes(result.stdout)
        partial.replace(cached)
    return base64.b64encode(cached.read_bytes()).decode("ascii")
