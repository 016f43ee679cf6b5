"""The OCI runtime configuration (``config.json``) of a container sandbox.

envd is bind-mounted read-only from the node's copy (so every sandbox runs the node's envd, whatever the
age of its template), and so is the Python it runs on (so a template needs no Python): started through
that runtime's own dynamic loader, envd sets no variable that the processes it starts would inherit.
envd is the container's init, except in a crun sandbox on a node with envd's fork server
(``envd_fork``): there the init is a static busybox that waits for envd, which the server forks in.

The sandbox gets its own pid, mount, uts (hostname = sandbox id), ipc and cgroup namespaces (under crun a
user namespace too, see ``idmap``) and the network namespace prepared by ``network``; a reduced capability
set, seccomp, masked and read-only kernel paths, and cgroup limits (memory, CPU quota, pids).

``noNewPrivileges`` stays off: the base template gives ``user`` passwordless ``sudo`` as E2B's does, and
sudo is a setuid program. The capability set, seccomp and the namespaces bound what root can do.
"""

from __future__ import annotations

from pathlib import Path

from .. import idmap
from ..types import ENVD_PORT, Engine, SandboxSpec
from . import seccomp

ENVD_PATH = "/usr/local/lib/hutch/envd.pyz"
ENVD_PYTHON = "/usr/local/lib/hutch/runtime"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PIDS_LIMIT = 1024
NOFILE = 16384  # below this host's hard limit (20000)
OOM_SCORE_ADJ = 500
INIT_ENV = [f"PATH={PATH}", "LANG=C.UTF-8"]
# The init of a crun sandbox whose envd the node's fork server makes (``envd_fork``): busybox's ``wc -c``
# on a pipe whose one writer is envd, so that it ends when envd does.
FORKED_INIT = "/usr/local/lib/hutch/busybox"
CAPABILITIES = [
    "CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT",
]  # fmt: skip
MASKED = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
]  # fmt: skip
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
SYSFS = "sys"  # in a crun sandbox's bundle: where its start mounts the sysfs the sandbox sees


def _mount(destination: str, kind: str, source: str, *options: str) -> dict:
    return {"destination": destination, "type": kind, "source": source, "options": list(options)}


def _envd_mounts(envd: Path, envd_python: Path | None) -> list[dict]:
    """envd and the runtime it runs on (none: the template's own Python runs it), read-only."""
    sources = {ENVD_PATH: envd, ENVD_PYTHON: envd_python}
    return [
        _mount(destination, "bind", str(source), "bind", "ro", "nosuid", "nodev")
        for destination, source in sources.items()
        if source is not None
    ]


def _mounts(envd: Path, envd_python: Path | None) -> list[dict]:
    return [
        *_envd_mounts(envd, envd_python),
        _mount("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
        _mount("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
        _mount(
            "/dev/pts",
            "devpts",
            "devpts",
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ),
        _mount("/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777", "size=65536k"),
        _mount("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"),
        _mount("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro"),
        _mount("/sys/fs/cgroup", "cgroup", "cgroup", "nosuid", "noexec", "nodev", "relatime", "ro"),
        _mount("/run", "tmpfs", "tmpfs", "nosuid", "nodev", "mode=755", "size=65536k"),
    ]


def envd_command() -> list[str]:
    """envd on the mounted runtime: its loader, its libraries, its Python (the links at its top)."""
    loader, libraries, python = (f"{ENVD_PYTHON}/{name}" for name in ("ld.so", "lib", "python3"))
    return [loader, "--library-path", libraries, python, "-I", ENVD_PATH, "--port", str(ENVD_PORT)]


def _init_args(envd_python: Path | None) -> list[str]:
    """envd on the mounted runtime, or on the template's own ``python3`` without one."""
    if envd_python is None:
        return ["/usr/bin/python3", "-I", ENVD_PATH, "--port", str(ENVD_PORT)]
    return envd_command()


def forks_envd(cfg: dict) -> bool:
    """Whether a sandbox of this configuration waits for the node's fork server to make its envd."""
    return cfg["process"]["args"][0] == FORKED_INIT


def _with_forked_envd(cfg: dict, busybox: Path) -> None:
    """busybox's ``wc -c`` as init, reading its stdin (the pipe envd holds): it ends when envd does."""
    cfg["process"]["args"] = [FORKED_INIT, "wc", "-c"]
    cfg["mounts"].insert(0, _mount(FORKED_INIT, "bind", str(busybox), "bind", "ro", "nosuid", "nodev"))


def _for_gvisor(cfg: dict, rootfs: Path) -> None:
    """gVisor's changes: the Sentry applies the seccomp filter to the sandbox's processes (runsc's
    ``--oci-seccomp``), from the OCI section as crun's annotation is crun's own; the
    cgroup files it would show are its own bookkeeping, writable by the sandbox's root, while the limits
    that bind are the host's, so none are mounted; and ``/tmp`` stays on the sandbox's disk, as with crun
    (gVisor would otherwise put an empty ``/tmp`` in memory), in its writable layer so that snapshots and
    copies keep it. runsc follows links in a mount source: the runtime makes ``tmp`` a real directory of
    the root before each run, boot and restore, while none of the sandbox's processes run."""
    mounts = [m for m in cfg["mounts"] if m["destination"] != "/sys/fs/cgroup"]
    mounts.append(_mount("/tmp", "bind", str(rootfs / "tmp"), "rbind", "rw", "nosuid", "nodev"))
    cfg["mounts"] = mounts
    cfg["linux"]["seccomp"] = seccomp.gvisor_section()


def _in_user_namespace(cfg: dict, rootfs: Path) -> None:
    """crun's sandboxes get a user namespace of their own: their root is an unprivileged host user
    (``idmap``), and the capabilities above count only inside. crun mounts the root from inside that
    namespace, whose root may not pass the host directories above the bundle: the root is named relative
    to the bundle (crun's working directory), which holds it. Nor may it mount a sysfs for a network
    namespace the host's user namespace owns (crun would bind the host's ``/sys``, which shows the host's
    and every other sandbox's interfaces): ``/sys`` is a bind of ``SYSFS`` in the bundle, where crun's
    start mounts a sysfs from inside the sandbox's network namespace."""
    cfg["root"]["path"] = rootfs.name
    sysfs = _mount("/sys", "bind", str(rootfs.parent / SYSFS), "bind", "nosuid", "noexec", "nodev", "ro")
    cfg["mounts"] = [sysfs if m["destination"] == "/sys" else m for m in cfg["mounts"]]
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = idmap.oci_mappings()
    cfg["linux"]["gidMappings"] = idmap.oci_mappings()


def config(
    *,
    sandbox_id: str,
    rootfs: Path,
    netns_path: str,
    spec: SandboxSpec,
    envd: Path,
    envd_python: Path | None,
    seccomp_bpf: str | None,
    engine: Engine = "crun",
    forked_envd: Path | None = None,
) -> dict:
    """The ``config.json`` for one sandbox. Under gVisor the Sentry filters the host system calls itself,
    so the sandbox's own seccomp filter is left out. With ``forked_envd`` (a static busybox; crun only),
    the init waits for envd from the node's fork server instead of being envd."""
    memory = spec.memory_mb * 1024 * 1024
    cfg: dict = {
        "ociVersion": "1.0.2",
        "hostname": sandbox_id,
        "root": {"path": str(rootfs), "readonly": False},
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": _init_args(envd_python),
            "env": [*INIT_ENV, f"HOSTNAME={sandbox_id}"],
            "cwd": "/",
            "noNewPrivileges": False,
            "capabilities": {key: CAPABILITIES for key in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": NOFILE, "soft": NOFILE}],
            "oomScoreAdj": OOM_SCORE_ADJ,
        },
        "mounts": _mounts(envd, envd_python),
        "linux": {
            "namespaces": [
                {"type": "pid"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
                {"type": "cgroup"},
                {"type": "network", "path": netns_path},
            ],
            "cgroupsPath": f"/hutch/{sandbox_id}",
            "resources": {
                "memory": {"limit": memory, "swap": memory},
                "cpu": {"quota": spec.cpu_count * 100_000, "period": 100_000},
                "pids": {"limit": PIDS_LIMIT},
                "devices": [{"allow": False, "access": "rwm"}],
            },
            "maskedPaths": MASKED,
            "readonlyPaths": READONLY,
        },
    }
    if engine == "gvisor":
        _for_gvisor(cfg, rootfs)
        return cfg
    _in_user_namespace(cfg, rootfs)
    if forked_envd is not None:
        _with_forked_envd(cfg, forked_envd)
    if seccomp_bpf is not None:
        cfg["annotations"] = {"run.oci.seccomp_bpf_data": seccomp_bpf}
    else:
        cfg["linux"]["seccomp"] = seccomp.oci_section()
    return cfg
