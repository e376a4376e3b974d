"""`/metrics` for Prometheus: the cluster, its queue and ingest as gauges, read at scrape time.

A custom collector reads PostgreSQL and Redis when Prometheus scrapes, in a fixed number of
bounded queries (a count per job state and pool, one row per node, a few commands per stream),
so nothing in the portal keeps counters in memory and every web process answers the same. Each
scrape builds its own `CollectorRegistry`: the process-wide default registry (and whatever
libraries put in it) stays out, and tests never share state through it.

The endpoint answers only a request carrying `Authorization: Bearer <TRAINYARD_METRICS_TOKEN>`;
without that setting it answers 404, so a portal never exposes it by accident
(docs/deploying.md has the scrape config).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterator
from typing import Literal

import redis
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db.models import Count, F, Min, Q, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from portal.cluster.models import Node
from portal.cluster.selectors import nodes_with_usage
from portal.jobs.models import Job
from portal.lib.streams import stream_lag
from workers.messages import stream_name

logger = logging.getLogger(__name__)

STREAMS: tuple[Literal["metrics", "logs", "events", "health"], ...] = (
    "metrics",
    "logs",
    "events",
    "health",
)


class TrainyardCollector(Collector):
    """Gauges for nodes, GPUs, the queue, jobs and ingest, read when collected."""

    def collect(self) -> Iterator[Metric]:
        yield from self._nodes()
        yield from self._jobs()
        yield from self._ingest()

    def _nodes(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "trainyard_node_up", "1 if the node is online", labels=["node", "pool"]
        )
        status = GaugeMetricFamily("trainyard_nodes", "Nodes by status", labels=["status"])
        slots = GaugeMetricFamily(
            "trainyard_node_cpu_slots", "CPU slots a node offers", labels=["node"]
        )
        slots_used = GaugeMetricFamily(
            "trainyard_node_cpu_slots_allocated", "CPU slots held by placements", labels=["node"]
        )
        gpus_used = GaugeMetricFamily(
            "trainyard_node_gpus_allocated", "GPUs held by placements", labels=["node"]
        )
        cpu = GaugeMetricFamily(
            "trainyard_node_cpu_percent", "Host CPU use at the last heartbeat", labels=["node"]
        )
        memory = GaugeMetricFamily(
            "trainyard_node_memory_used_bytes", "Host memory in use", labels=["node"]
        )
        memory_total = GaugeMetricFamily(
            "trainyard_node_memory_total_bytes", "Host memory", labels=["node"]
        )
        heartbeat_age = GaugeMetricFamily(
            "trainyard_node_heartbeat_age_seconds",
            "Seconds since ingest stored the node's last heartbeat",
            labels=["node"],
        )
        gpu_labels = ["node", "gpu", "model"]
        gpu_util = GaugeMetricFamily(
            "trainyard_gpu_utilization_percent", "GPU utilisation (NVML)", labels=gpu_labels
        )
        gpu_memory = GaugeMetricFamily(
            "trainyard_gpu_memory_used_bytes", "GPU memory in use", labels=gpu_labels
        )
        gpu_memory_total = GaugeMetricFamily(
            "trainyard_gpu_memory_total_bytes", "GPU memory", labels=gpu_labels
        )
        gpu_temperature = GaugeMetricFamily(
            "trainyard_gpu_temperature_celsius", "GPU temperature", labels=gpu_labels
        )
        gpu_power = GaugeMetricFamily(
            "trainyard_gpu_power_watts", "GPU power draw", labels=gpu_labels
        )
        counts: dict[str, int] = dict.fromkeys(
            ("online", "offline", "draining", "cordoned", "unhealthy"), 0
        )
        now = time.time()
        for node in nodes_with_usage():
            counts[node.status] = counts.get(node.status, 0) + 1
            online = node.state == Node.State.ONLINE
            up.add_metric([node.name, node.pool], 1.0 if online else 0.0)
            slots.add_metric([node.name], node.cpu_slots)
            slots_used.add_metric([node.name], node.slots_in_use)
            gpus_used.add_metric([node.name], node.gpus_in_use)
            if node.last_heartbeat_at is not None:
                heartbeat_age.add_metric([node.name], now - node.last_heartbeat_at.timestamp())
            health = node.health if isinstance(node.health, dict) else {}
            if not online or not health:
                continue  # an offline node's last reading is not a reading of now
            cpu.add_metric([node.name], float(health.get("cpu_percent") or 0.0))
            memory.add_metric([node.name], float(health.get("memory_used") or 0))
            memory_total.add_metric([node.name], float(health.get("memory_total") or 0))
            for gpu in health.get("gpus") or []:
                labels = [node.name, str(gpu.get("index")), str(gpu.get("name", ""))]
                for family, key in (
                    (gpu_util, "utilization"),
                    (gpu_memory, "memory_used"),
                    (gpu_memory_total, "memory_total"),
                    (gpu_temperature, "temperature"),
                    (gpu_power, "power"),
                ):
                    if gpu.get(key) is not None:
                        family.add_metric(labels, float(gpu[key]))
        for name, value in counts.items():
            status.add_metric([name], value)
        yield from (up, status, slots, slots_used, gpus_used, cpu, memory, memory_total)
        yield from (heartbeat_age, gpu_util, gpu_memory, gpu_memory_total, gpu_temperature)
        yield gpu_power

    def _jobs(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "trainyard_jobs", "Jobs by state and pool", labels=["state", "pool"]
        )
        for row in Job.objects.values("state", "pool").annotate(n=Count("id")).order_by():
            jobs.add_metric([row["state"], row["pool"] or "any"], row["n"])
        yield jobs
        queued = Job.objects.filter(state=Job.State.QUEUED)
        totals = queued.aggregate(
            oldest=Min("created_at"),
            gpus=Sum(F("nodes") * F("gpus_per_node")),
            slots=Sum(F("nodes") * F("procs_per_node"), filter=Q(gpus_per_node=0)),
        )
        wanted = GaugeMetricFamily(
            "trainyard_queue_requested", "What the queued jobs ask for", labels=["resource"]
        )
        wanted.add_metric(["gpus"], float(totals["gpus"] or 0))
        wanted.add_metric(["cpu_slots"], float(totals["slots"] or 0))
        yield wanted
        oldest = GaugeMetricFamily(
            "trainyard_queue_oldest_seconds", "How long the oldest queued job has waited"
        )
        at = totals["oldest"]
        oldest.add_metric([], 0.0 if at is None else max(0.0, time.time() - at.timestamp()))
        yield oldest

    def _ingest(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "trainyard_ingest_lag_seconds",
            "Age of the newest entry ingest has read, against the newest in the stream",
            labels=["stream"],
        )
        pending = GaugeMetricFamily(
            "trainyard_ingest_pending_entries",
            "Entries ingest has read and not yet stored (acknowledged)",
            labels=["stream"],
        )
        length = GaugeMetricFamily(
            "trainyard_stream_length", "Entries held in a telemetry stream", labels=["stream"]
        )
        up = GaugeMetricFamily(
            "trainyard_ingest_reachable", "1 if Redis answered and ingest's group exists"
        )
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
        )
        reachable = 1.0
        try:
            for kind in STREAMS:
                found = stream_lag(client, stream_name(settings.TRAINYARD_STREAM_PREFIX, kind))
                if found is None:
                    reachable = 0.0
                    continue
                seconds, held, entries = found
                lag.add_metric([kind], seconds)
                pending.add_metric([kind], held)
                length.add_metric([kind], entries)
        except redis.RedisError as exc:
            logger.warning("metrics: Redis unavailable: %s", exc)
            reachable = 0.0
        finally:
            client.close()
        up.add_metric([], reachable)
        yield from (lag, pending, length, up)


def _authorized(request: HttpRequest, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


@login_not_required
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus's scrape; 404 unless `TRAINYARD_METRICS_TOKEN` is set, 401 without it."""
    token = settings.TRAINYARD_METRICS_TOKEN
    if not token:
        raise Http404("Metrics are not enabled.")
    if not _authorized(request, token):
        response = HttpResponse(
            "A bearer token is required.\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TrainyardCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
