"""The client address (transport/client_address.py) and the RPC observer that sets it: a
forwarded address counts from a trusted proxy only, and only the addressed services'
calls pay for it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import grpc
import pytest

from watchword_server.transport.client_address import ClientAddresses, client_ip
from watchword_server.transport.rpc_observer import RpcObserver


class FakeContext:
    def __init__(self, peer: str, metadata: Sequence[tuple[str, str]] = ()) -> None:
        self._peer = peer
        self._metadata = tuple(metadata)

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def _of(addresses: ClientAddresses, peer: str, *metadata: tuple[str, str]) -> str:
    return addresses.of(cast(Any, FakeContext(peer, metadata)))


def test_a_forwarded_address_counts_from_a_trusted_proxy_only() -> None:
    local = ClientAddresses({"127.0.0.1", "::1"})
    forwarded = ("x-forwarded-for", "203.0.113.7, 10.0.0.1")
    assert _of(local, "ipv4:127.0.0.1:5000", forwarded) == "203.0.113.7"
    assert _of(local, "ipv6:[::1]:5000", ("x-real-ip", "203.0.113.8")) == "203.0.113.8"
    assert _of(local, "ipv4:192.0.2.1:5000", forwarded) == "192.0.2.1"
    assert _of(local, "ipv6:[2001:db8::1]:5000", forwarded) == "2001:db8::1"
    assert _of(local, "ipv4:127.0.0.1:5000", ("x-forwarded-for", " ")) == "127.0.0.1"
    assert _of(ClientAddresses({"*"}), "ipv4:192.0.2.1:5000", forwarded) == "203.0.113.7"
    assert _of(ClientAddresses(()), "ipv4:127.0.0.1:5000", forwarded) == "127.0.0.1"


def test_the_observer_sets_the_address_for_the_addressed_services_only() -> None:
    async def behavior(request: Any, context: Any) -> str:
        return client_ip()

    handler: grpc.RpcMethodHandler[Any, Any] = grpc.unary_unary_rpc_method_handler(behavior)
    observer = RpcObserver(
        None,
        access_log=False,
        addresses=ClientAddresses({"127.0.0.1"}),
        addressed={"watchword.auth.v1.AuthService"},
    )
    # Metrics and the access log off: the checks keep their handler, unwrapped.
    unaddressed = "/watchword.auth.v1.AccessService/HasPermission"
    assert observer.wrap(unaddressed, handler) is handler
    wrapped = observer.wrap("/watchword.auth.v1.AuthService/Register", handler)
    context = FakeContext("ipv4:127.0.0.1:1", [("x-forwarded-for", "203.0.113.7")])

    unary = cast(Any, wrapped.unary_unary)

    async def call() -> str:
        return cast(str, await unary(None, context))

    assert asyncio.run(call()) == "203.0.113.7"
    with pytest.raises(LookupError):  # not set outside a call of an addressed service
        client_ip()
