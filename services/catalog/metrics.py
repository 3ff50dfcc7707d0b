"""The catalog's gauges, read from Postgres at scrape time: the queue per model and priority (the same
domain call as `GET /api/queue`), each model server's state, and the webhook and Arweave backlogs. Every
catalog replica answers the same values: aggregate them with `max`, never `sum`."""

from __future__ import annotations

import time

from prometheus_client.core import GaugeMetricFamily

from .domain import Catalog


async def read_gauges(catalog: Catalog) -> list[GaugeMetricFamily]:
    queue = GaugeMetricFamily(
        "imagegen_queue_jobs",
        "Jobs pending (waiting for a server) and processing (on one), by project, model and priority.",
        labels=["project", "model", "priority", "state"],
    )
    oldest = GaugeMetricFamily(
        "imagegen_queue_oldest_pending_seconds",
        "Age of the oldest pending job, by project, model and priority.",
        labels=["project", "model", "priority"],
    )
    now = time.time()
    for line in await catalog.queue_summary(None):
        labels = [line["project_id"], line["model"], line["priority"]]
        queue.add_metric([*labels, "pending"], line["pending"])
        queue.add_metric([*labels, "processing"], line["processing"])
        if line["oldest_pending_at"] is not None:
            oldest.add_metric(labels, max(0.0, now - line["oldest_pending_at"].timestamp()))
    up = GaugeMetricFamily(
        "imagegen_model_server_up", "1 when a model server takes jobs, 0 while benched.",
        labels=["project", "model", "server"],
    )  # fmt: skip
    running = GaugeMetricFamily(
        "imagegen_model_server_jobs_running",
        "Jobs running on a model server.",
        labels=["project", "model", "server"],
    )
    failures = GaugeMetricFamily(
        "imagegen_model_server_consecutive_failures",
        "A model server's failures in a row (3 bench it).",
        labels=["project", "model", "server"],
    )
    for server in await catalog.server_states():
        labels = [server["project_id"], server["model"], server["id"]]
        up.add_metric(labels, 0 if server["benched"] else 1)
        running.add_metric(labels, server["running"])
        failures.add_metric(labels, server["consecutive_failures"])
    backlogs = await catalog.backlogs()
    webhooks = GaugeMetricFamily("imagegen_webhook_deliveries_pending", "Webhook deliveries not yet made.")
    webhooks.add_metric([], backlogs["webhooks"])
    archives = GaugeMetricFamily(
        "imagegen_arweave_archives_pending", "Images waiting to be posted to Arweave."
    )
    archives.add_metric([], backlogs["arweave"])
    return [queue, oldest, up, running, failures, webhooks, archives]
