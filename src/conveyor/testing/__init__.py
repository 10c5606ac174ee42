"""Fault injection for your own tests: crash, hang or raise at item N of task T.

    from conveyor.testing import Fault, inject

    with inject(Fault("track", item=20, mode="kill")):
        result = cv.run(graph, backend="local", collect=["track"])
    assert result.restarts            # the pipeline was killed and restarted ...
    # ... and its outputs equal an inline run's: nothing lost, nothing doubled.

Faults are set for the runs started while the ``with`` block is open (in any thread of this
process): each run carries them to its pipelines in its run context. A program started inside
the block gets them in its environment and arms them with ``from_environment()`` at its edge
(``peopleflow``'s and ``conveyor``'s CLIs do).

``item`` counts the calls of the task in one process, from 0. A fault
fires once per run by default (a marker file makes sure a restarted pipeline does not crash
again at the same item); ``once=False`` fires in every process. ``at="start"`` fires while
the pipeline that runs the task starts, before it runs anything.

Modes: ``raise`` (a ``RuntimeError`` in the task), ``exit`` (``os._exit(13)``), ``kill``
(SIGKILL), ``segfault`` (a real segmentation fault), ``hang`` (an endless loop), ``sleep``
(``seconds`` long).

``simulated_cluster("store-a", "store-b")`` runs a Ray cluster of two nodes on this machine,
for a graph spread over nodes (``backend="ray"``).
"""

from conveyor.runtime.faults import Fault, from_environment, inject
from conveyor.testing.cluster import simulated_cluster

__all__ = ["Fault", "from_environment", "inject", "simulated_cluster"]
