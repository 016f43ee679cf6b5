"""The cluster of :mod:`tests.cluster.harness`, once per test module (its tests restart and kill parts of
it, and leave it whole again)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from tests.cluster.harness import Cluster, running_cluster
from tests.stack import WORKER


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.fail("the cluster tests need root (crun, mounts, network namespaces)")
    with running_cluster(tmp_path_factory.mktemp("cluster"), worker=WORKER) as running:
        yield running
