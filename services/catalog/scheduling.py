"""Who goes next and where: Meteron's priority scores, and least-outstanding-requests server choice."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class PriorityPolicy:
    """A user past a threshold of requests in the last 24 hours drops to the lower score."""

    medium_daily_threshold: int = 10
    low_daily_threshold: int = 5

    @property
    def counted_up_to(self) -> int:
        """No score tells apart counts above this, so a user's recent requests are counted only this
        far: the count costs the same for a user with a million requests a day."""
        return max(self.medium_daily_threshold, self.low_daily_threshold) + 1

    def score(self, priority: str, requests_last_24h: int) -> int:
        if priority == "high":
            return 100
        if priority == "low":
            return 1 if requests_last_24h > self.low_daily_threshold else 20
        return 50 if requests_last_24h > self.medium_daily_threshold else 80


@dataclass(frozen=True)
class QueuedJob:
    generation_id: str
    model_id: str
    # The server its previous attempt failed on; another one is preferred.
    last_server_id: str | None


@dataclass(frozen=True)
class Server:
    id: str
    model_id: str
    position: int
    max_concurrency: int


def assign_servers(
    jobs: list[QueuedJob], servers: list[Server], running: dict[str, int]
) -> list[tuple[QueuedJob, Server]]:
    """Gives each job, in the order given, the healthy server of its model with the fewest jobs running,
    never more than its `max_concurrency`; jobs with no free server stay queued."""
    by_model: dict[str, list[Server]] = defaultdict(list)
    for server in servers:
        by_model[server.model_id].append(server)
    load = defaultdict(int, running)
    assigned = []
    for job in jobs:
        free = [s for s in by_model[job.model_id] if load[s.id] < s.max_concurrency]
        if not free:
            continue
        elsewhere = [s for s in free if s.id != job.last_server_id] or free
        server = min(elsewhere, key=lambda s: (load[s.id], s.position))
        load[server.id] += 1
        assigned.append((job, server))
    return assigned
