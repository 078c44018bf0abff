"""The delivery worker: claims queued messages and delivers them through providers.

``run_worker(runtime)`` is the service; see ``service.py`` for how claiming,
delivering and writing results fit together, ``router.py`` for routing rules,
``attempt.py`` for failover, ``retry.py`` and ``breaker.py`` for the policies, and
``providers/`` for one module per upstream type.
"""

from .service import Worker, WorkerStatistics, run_worker

__all__ = ["Worker", "WorkerStatistics", "run_worker"]
