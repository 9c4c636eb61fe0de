"""Adds services to a grpc.aio server through its generic handlers only.

The generated ``add_*_to_server`` functions also register each method with gRPC Core
("registered methods"). grpc.aio's serving loop then keeps one pending request per
registered method and ``asyncio.wait``s on all of them for every call it accepts: with
this contract's ~35 methods that wait costs more per call than an access check's own
work, for every RPC, Health included. Through the generic handlers alone, the loop waits
on one request, and a method is found with one dictionary lookup per service.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import grpc

__all__ = ["generic_only"]


class _GenericOnly:
    """Stands in for the server in a generated ``add_*_to_server`` call."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: dict[str, Any]
    ) -> None:
        """Ignored: the same handlers arrive through ``add_generic_rpc_handlers``."""


def generic_only(server: grpc.aio.Server) -> grpc.aio.Server:
    """``server`` as seen by a generated ``add_*_to_server`` function, registering its
    services through generic handlers only (see the module docstring)."""
    # The generated functions only call these two methods; the cast lets them type-check.
    return cast(grpc.aio.Server, _GenericOnly(server))
