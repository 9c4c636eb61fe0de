"""A client interceptor that records the unary calls a client makes, with their answers."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

__all__ = ["Recorded", "Recorder"]


@dataclass
class Recorded:
    """One unary call: its method (``"AccessService/BatchCheck"``), request and response
    (``None`` when it failed)."""

    method: str
    request: Any
    response: Any = None


class Recorder(grpc.aio.UnaryUnaryClientInterceptor):
    """Records every unary call on the channels it is given to; ``channel()`` makes one."""

    def __init__(self) -> None:
        self.calls: list[Recorded] = []

    def channel(self, address: str) -> grpc.aio.Channel:
        """An insecure channel to ``address`` whose unary calls are recorded."""
        return grpc.aio.insecure_channel(address, interceptors=[self])

    @property
    def methods(self) -> list[str]:
        """The recorded calls' methods, without the package: ``"AuthService/Introspect"``."""
        return [call.method for call in self.calls]

    def of(self, method: str) -> list[Recorded]:
        """The recorded calls of one method (``"AccessService/BatchCheck"``)."""
        return [call for call in self.calls if call.method == method]

    async def intercept_unary_unary(
        self,
        continuation: Callable[..., Any],
        details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        recorded = Recorded(method.removeprefix("/watchword.auth.v1."), request)
        self.calls.append(recorded)
        call = await continuation(details, request)
        with contextlib.suppress(grpc.RpcError):  # the caller sees it when it awaits the call
            recorded.response = await call
        return call
