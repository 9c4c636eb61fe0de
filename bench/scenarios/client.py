"""B6: what a cached ``watchword.requires`` check adds to a call of the caller's service.

Measured in this process, as a caller would pay it: a servicer method protected by
``@requires(has_permission(...))`` with the guard's answer cache on, called with a context
that carries a session token, against the same method unprotected. The cache is filled by
one call to the live server first; a counting interceptor on the client's channel proves
that no timed call reached the server.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import grpc

from bench.interleave import Triple, interleave, median_of
from bench.results import Figure, at_most
from bench.server import ServerProcess
from bench.stage import Stage, progress
from watchword import Guard, has_permission, requires
from watchword.client import AsyncClient

__all__ = ["B6_METHOD", "b6"]

B6_METHOD = (
    "in-process time.perf_counter over many awaited calls of a servicer method under "
    "@requires(has_permission(...)) with the guard's cache warm (no timed call reaches the "
    "server) minus the same method unprotected; each protected timing between two plain "
    "ones; median over the rounds."
)

_CACHE_TTL = 3600.0


class _Context:
    """The part of a ``grpc.aio.ServicerContext`` that ``requires`` reads."""

    def __init__(self, session_token: str) -> None:
        self._metadata = (("authorization", f"Bearer {session_token}"),)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    async def abort(self, code: grpc.StatusCode, details: str = "") -> NoReturn:
        raise RuntimeError(f"the benchmark's protected call was refused: {code} {details}")


class _Counter(grpc.aio.UnaryUnaryClientInterceptor):
    """Counts the unary calls the client makes."""

    def __init__(self) -> None:
        self.calls = 0

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        self.calls += 1
        return await continuation(details, request)


Method = Callable[[object, Any], Awaitable[bool]]


async def _per_call(method: Method, context: _Context, calls: int) -> float:
    """Seconds per awaited call of ``method``."""
    request = object()
    started = time.perf_counter()
    for _ in range(calls):
        await method(request, context)
    return (time.perf_counter() - started) / calls


def b6(stage: Stage, server: ServerProcess) -> list[Figure]:
    """B6 against ``server`` (the everyday configuration)."""
    options = stage.options
    context = _Context(stage.session_token(server))
    counter = _Counter()
    with asyncio.Runner() as runner:

        async def connect() -> tuple[grpc.aio.Channel, AsyncClient]:
            channel = grpc.aio.insecure_channel(server.target, interceptors=[counter])
            return channel, AsyncClient(
                server.target, channel=channel, service_key=stage.everyday.access_key
            )

        channel, client = runner.run(connect())
        guard = Guard(client, cache_ttl=_CACHE_TTL)

        async def plain(request: object, context: Any) -> bool:
            return True

        @requires(has_permission("edit", "posts", record="42"), guard=guard)
        async def protected(request: object, context: Any) -> bool:
            return True

        try:
            runner.run(protected(object(), context))  # fills the cache from the server
            asked = counter.calls
            progress(f"B6: {options.rounds} rounds of {options.client_calls:,} calls each way")
            calls = options.client_calls
            triples = interleave(
                lambda: runner.run(_per_call(plain, context, calls)),
                {"requires": lambda: runner.run(_per_call(protected, context, calls))},
                options.rounds,
                guard=stage.steal,
            )["requires"]
            if counter.calls != asked:
                raise RuntimeError(f"{counter.calls - asked} timed checks reached the server")
        finally:
            runner.run(client.close())
            runner.run(channel.close())

    def overhead(triple: Triple[float, float]) -> float:
        return (triple.subject - triple.reference(float)) * 1e6

    protected_us = statistics.median(t.subject for t in triples) * 1e6
    plain_us = statistics.median(t.reference(float) for t in triples) * 1e6
    return [
        Figure(
            "B6",
            "cached requires check, overhead per call",
            median_of(triples, overhead),
            unit="µs",
            target=at_most(20),
            detail=f"{protected_us:.2f} vs {plain_us:.2f} µs per call "
            f"({protected_us / plain_us:,.0f}× a plain call)",
            numbers={"protected_us": protected_us, "plain_us": plain_us},
        )
    ]
