"""A Ray cluster of several nodes on this machine, for tests and benchmarks of a spread run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def simulated_cluster(*labels: str, cpus: int = 1) -> Iterator[Any]:
    """One node per label (a custom resource that ``@task(node=label)`` names; the first is
    the head, where this program runs), each with ``cpus`` CPUs, on ``ray.cluster_utils``;
    this process is connected to it. Yields the ``Cluster`` (``add_node``, ``remove_node``);
    Ray is shut down and the nodes stopped at the end."""
    from conveyor.backends.ray_backend import ensure_ray, ray_module

    ray = ray_module()
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    head, *others = labels
    sim = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": cpus, "resources": {head: 1}, "include_dashboard": False},
    )
    try:
        for label in others:
            sim.add_node(num_cpus=cpus, resources={label: 1})
        sim.wait_for_nodes()
        ensure_ray({"address": sim.address})
        yield sim
    finally:
        ray.shutdown()
        sim.shutdown()  # type: ignore[no-untyped-call]
