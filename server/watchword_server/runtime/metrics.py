"""Prometheus metrics of one server process, served on ``metrics_listen`` (``/metrics``).

Per-RPC series carry the names dashboards know from go-grpc-prometheus
(``grpc_server_started_total``, ``grpc_server_handled_total``,
``grpc_server_handling_seconds``); the RPC observer (``transport/rpc_observer.py``) feeds
them. What the hot path only counts in plain integers (cache hits and misses) and what
is a state rather than an event (pool use, hashing queue) is read into the series by
``refresh``, at every scrape: a check pays for no metric it does not need.

Each process has its own registry (tests run several servers in one process). Under
``serve --workers N`` the supervisor serves one ``/metrics`` for all workers, from
prometheus-client's multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, set by the
supervisor before the workers start); the workers then serve none themselves.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)
from prometheus_client.metrics_core import Metric

__all__ = [
    "MULTIPROCESS_DIR",
    "Metrics",
    "MetricsServer",
    "PoolUse",
    "RpcMetrics",
    "serve_metrics",
]

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's variable naming the directory of a multiprocess group's files."""

# Seconds: a cached check answers in tens of microseconds, a bcrypt(12) login in ~250 ms.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class PoolUse:
    """How much of a connection pool is in use: ``name``, a reader of (in use, size)."""

    name: str
    read: Callable[[], tuple[int, int]]


class RpcMetrics:
    """The per-RPC series, with label children looked up once per method and code."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        labels = ("grpc_type", "grpc_service", "grpc_method")
        self._started = Counter(
            "grpc_server_started_total", "RPCs started on the server.", labels, registry=registry
        )
        self._handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, whatever their status.",
            (*labels, "grpc_code"),
            registry=registry,
        )
        self._seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time from an RPC's start to its last response, in seconds.",
            labels,
            buckets=_BUCKETS,
            registry=registry,
        )
        self._reasons = Counter(
            "watchword_rpc_refusals_total",
            "RPCs refused with a Watchword error, by its ErrorInfo reason (login outcomes "
            "such as INVALID_CREDENTIALS, throttling as TOO_MANY_ATTEMPTS or OVERLOADED).",
            ("grpc_service", "grpc_method", "reason"),
            registry=registry,
        )

    def method(self, grpc_type: str, service: str, method: str) -> MethodMetrics:
        """The series of one method (made once, when its handler is wrapped)."""
        return MethodMetrics(self, grpc_type, service, method)


class MethodMetrics:
    """One method's series: what the observer touches on every call."""

    def __init__(self, metrics: RpcMetrics, grpc_type: str, service: str, method: str) -> None:
        labels = (grpc_type, service, method)
        self._labels = labels
        self._metrics = metrics
        self.started = metrics._started.labels(*labels)  # noqa: SLF001 - one family
        self.seconds = metrics._seconds.labels(*labels)  # noqa: SLF001
        self._handled: dict[str, Counter] = {}

    def handled(self, code: str) -> Counter:
        """The ``grpc_server_handled_total`` child of ``code`` (e.g. ``OK``)."""
        child = self._handled.get(code)
        if child is None:
            child = self._handled[code] = self._metrics._handled.labels(*self._labels, code)  # noqa: SLF001
        return child

    def refused(self, reason: str) -> None:
        """Count a refusal with ErrorInfo ``reason``."""
        _, service, method = self._labels
        self._metrics._reasons.labels(service, method, reason).inc()  # noqa: SLF001


class Metrics:
    """The process's registry: the per-RPC series and the states read at each scrape."""

    def __init__(self, *, multiprocess_mode: bool = False) -> None:
        self.multiprocess = multiprocess_mode
        # In multiprocess mode the values live in the group's files, not in a registry.
        # (None registers nowhere: a worker's values go to its files all the same.)
        self.registry = None if multiprocess_mode else CollectorRegistry()
        registry = self.registry
        self.rpc = RpcMetrics(registry)
        self._cache_lookups = Counter(
            "watchword_check_cache_lookups_total",
            "Lookups in the check and service-key caches, by cache and result.",
            ("cache", "result"),
            registry=registry,
        )
        self._pool_in_use = Gauge(
            "watchword_database_connections_in_use",
            "Database connections in use, by pool.",
            ("pool",),
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._pool_size = Gauge(
            "watchword_database_connections_max",
            "Most database connections a pool may open.",
            ("pool",),
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._hashing = Gauge(
            "watchword_password_hashing_jobs",
            "Password hashing jobs running or waiting.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        # Every process reads the same outbox: the workers' group reports one of them.
        self._outbox_waiting = Gauge(
            "watchword_mail_outbox_waiting",
            "Mails waiting to be sent.",
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self._outbox_age = Gauge(
            "watchword_mail_outbox_oldest_age_seconds",
            "Age of the oldest mail waiting to be sent (0 when none waits).",
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self._outbox_dead = Gauge(
            "watchword_mail_dead_letters",
            "Mails given up after too many failed attempts (`watchword mail dead`).",
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self._caches: list[tuple[str, Callable[[], tuple[int, int]]]] = []
        self._counted: dict[str, tuple[int, int]] = {}
        self._pools: list[PoolUse] = []
        self._hashing_jobs: Callable[[], int] | None = None
        self._lock = threading.Lock()

    def watch_cache(self, name: str, counts: Callable[[], tuple[int, int]]) -> None:
        """Report a cache whose ``counts()`` are its (hits, misses) so far."""
        self._caches.append((name, counts))

    def watch_pool(self, pool: PoolUse) -> None:
        """Report a connection pool's use."""
        self._pools.append(pool)

    def watch_hashing(self, jobs: Callable[[], int]) -> None:
        """Report the hashing pool's jobs."""
        self._hashing_jobs = jobs

    def outbox(self, waiting: int, oldest_age: float, dead: int) -> None:
        """Report the mail outbox's state (read from the database now and then)."""
        self._outbox_waiting.set(waiting)
        self._outbox_age.set(max(0.0, oldest_age))
        self._outbox_dead.set(dead)

    def refresh(self) -> None:
        """Read the watched states into their series (before a scrape; thread-safe)."""
        with self._lock:
            for name, counts in self._caches:
                hits, misses = counts()
                seen_hits, seen_misses = self._counted.get(name, (0, 0))
                self._cache_lookups.labels(name, "hit").inc(max(0, hits - seen_hits))
                self._cache_lookups.labels(name, "miss").inc(max(0, misses - seen_misses))
                self._counted[name] = (hits, misses)
            for pool in self._pools:
                in_use, size = pool.read()
                self._pool_in_use.labels(pool.name).set(in_use)
                self._pool_size.labels(pool.name).set(size)
            if self._hashing_jobs is not None:
                self._hashing.set(self._hashing_jobs())


class _Refreshing(CollectorRegistry):
    """A registry view that refreshes the watched states before it is collected."""

    def __init__(self, metrics: Metrics, registry: CollectorRegistry) -> None:
        super().__init__(auto_describe=False)
        self._metrics = metrics
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        self._metrics.refresh()
        yield from self._registry.collect()


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint."""

    server: WSGIServer
    thread: threading.Thread
    port: int

    def stop(self) -> None:
        """Stop serving (the thread ends with the server)."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(listen: str, metrics: Metrics | None) -> MetricsServer:
    """Serve ``/metrics`` on ``listen`` (host:port) from a thread: ``metrics``' registry,
    or (None) the multiprocess group's files of ``serve --workers``.

    Raises:
        OSError: the address cannot be bound.
    """
    host, _, port = listen.rpartition(":")
    if metrics is not None and metrics.registry is not None:
        registry: CollectorRegistry = _Refreshing(metrics, metrics.registry)
    else:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
            registry, path=os.environ[MULTIPROCESS_DIR]
        )
    server, thread = start_http_server(int(port), addr=host.strip("[]"), registry=registry)
    return MetricsServer(server, thread, server.server_port)
