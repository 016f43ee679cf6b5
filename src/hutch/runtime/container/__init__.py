"""The ``container`` backend: sandboxes as containers over overlay root filesystems, run by one of two
engines chosen per sandbox: ``crun`` (the default) or gVisor's runsc (``gvisor``, hardened).

Where each part is:

- ``backend``: ``ContainerRuntime``, the node's list of sandboxes: create (from the warm pool or
  started), hand-out, kill, and the checks every request passes;
- ``start``: the steps that make a sandbox and the teardown that undoes them;
- ``pause``, ``snapshots``: pause and resume; commits, snapshots and the checkpoints forks are made from;
- ``recovery``: adopting sandboxes after a restart, tearing down the rest;
- ``sandbox``, ``state``: the record of one sandbox and its state file;
- ``host``: what all sandboxes share, crun and runsc by name among it (``crun``, ``runsc``, ``oci_cli``,
  ``oci``, ``seccomp``: how they are run), and envd's fork server (``envd_fork``);
- ``disk``, ``rootfs``, ``root_files``, ``boot_id``, ``checkpoints``: a sandbox's files;
- ``network``, ``egress``: its network namespace, and what may leave it;
- ``cgroups``, ``pool``, ``envd_log``: limits and CPU weights, the warm pool, the log it keeps;
- ``metrics``: what a sandbox uses, read from its cgroup and its disk for the node's sampler.
"""

from .backend import ContainerRuntime

__all__ = ["ContainerRuntime"]
