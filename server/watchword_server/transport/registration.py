"""Adds services to a grpc.aio server through its generic handlers only, optionally with
request bodies that cannot be decoded handed on instead of failing in gRPC.

The generated ``add_*_to_server`` functions also register each method with gRPC Core
("registered methods"). grpc.aio's serving loop then keeps one pending request per
registered method and ``asyncio.wait``s on all of them for every call it accepts: with
this contract's ~35 methods that wait costs more per call than an access check's own
work, for every RPC, Health included. Through the generic handlers alone, the loop waits
on one request, and a method is found with one dictionary lookup per service.

gRPC decodes a request before any handler of ours runs, and a body it cannot decode ends
the call with UNKNOWN, before the service key is checked. With ``lenient`` decoding such
a body arrives as an ``Undecodable``: the RPC wrapping checks the key first, then answers
INVALID_ARGUMENT (see ``transport/rpc_wrapping.py``).

A keyed service may be added behind a key gate (``add_key_gated``): gRPC asks a generic
handler for each call's handler with that call's metadata, already read for the purpose,
so a key the cache vouches for is checked there, and the call runs the RPC without a
second check; any other call runs the RPC with its key check, which awaits the database or
refuses. This spares every keyed call reading its metadata again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc
from google.protobuf.message import DecodeError

__all__ = ["Metadata", "Observe", "Undecodable", "add_key_gated", "generic_only"]

Metadata = Iterable[tuple[str, str | bytes]]
Servicer = TypeVar("Servicer")
Handlers = dict[str, "grpc.RpcMethodHandler[Any, Any]"]
# Wraps a method's handler, given its full name (``/package.Service/Method``): the RPC
# observer's metrics and access log (``transport/rpc_observer.py``).
Observe = Callable[[str, "grpc.RpcMethodHandler[Any, Any]"], "grpc.RpcMethodHandler[Any, Any]"]


def _unobserved(_method: str, handler: grpc.RpcMethodHandler[Any, Any]) -> Any:
    return handler


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A request body that is not a valid message of its RPC's request type."""

    error: str


class _GenericOnly:
    """Stands in for the server in a generated ``add_*_to_server`` call."""

    def __init__(self, server: grpc.aio.Server, *, lenient: bool, observe: Observe) -> None:
        self._server = server
        self._lenient = lenient
        self._observe = observe

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        """Ignored: the same handlers arrive, readable, in ``add_registered_method_handlers``."""

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        handlers = {
            name: self._observe(
                f"/{service_name}/{name}", _lenient(handler) if self._lenient else handler
            )
            for name, handler in method_handlers.items()
        }
        generic = grpc.method_handlers_generic_handler(service_name, handlers)
        self._server.add_generic_rpc_handlers((generic,))


class _Collecting:
    """Stands in for the server in a generated ``add_*_to_server`` call, keeping its
    handlers by full method name."""

    def __init__(self, *, lenient: bool, observe: Observe) -> None:
        self._lenient = lenient
        self._observe = observe
        self.handlers: Handlers = {}

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        """Ignored, as in ``_GenericOnly``."""

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        for name, handler in method_handlers.items():
            method = f"/{service_name}/{name}"
            self.handlers[method] = self._observe(
                method, _lenient(handler) if self._lenient else handler
            )


class _KeyGate(grpc.GenericRpcHandler):
    """A keyed service's handlers, chosen per call by what the key cache says of its key."""

    def __init__(self, checked: Handlers, admitted: Handlers, admits: Callable[[Metadata], bool]):
        self._checked = checked
        # Unary RPCs only: a stream keeps checking its key for as long as it runs.
        self._admitted = {
            method: admitted[method]
            for method, handler in checked.items()
            if handler.unary_unary is not None
        }
        self._admits = admits

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        checked = self._checked.get(method)
        if checked is None:
            return None  # another service's call: it costs one lookup here
        if self._admits(handler_call_details.invocation_metadata or ()):
            return self._admitted.get(method, checked)
        return checked


def add_key_gated(
    server: grpc.aio.Server,
    add_to_server: Callable[[Servicer, grpc.aio.Server], None],
    *,
    checked: Servicer,
    admitted: Servicer,
    admits: Callable[[Metadata], bool],
    lenient: bool = False,
    observe: Observe = _unobserved,
) -> None:
    """Add a keyed service behind a key gate (see the module docstring).

    Args:
        server: The server to add to.
        add_to_server: The service's generated ``add_*_to_server`` function.
        checked: The servicer whose RPCs check the key.
        admitted: The same servicer without the check, for calls ``admits`` vouches for.
        admits: Whether a call's metadata carries a key the cache vouches for (a False
            only means the checked RPC decides).
        lenient: As in ``generic_only``.
        observe: As in ``generic_only``.
    """
    handlers: list[Handlers] = []
    for servicer in (checked, admitted):
        collecting = _Collecting(lenient=lenient, observe=observe)
        add_to_server(servicer, cast(grpc.aio.Server, collecting))
        handlers.append(collecting.handlers)
    server.add_generic_rpc_handlers((_KeyGate(handlers[0], handlers[1], admits),))


def generic_only(
    server: grpc.aio.Server, *, lenient: bool = False, observe: Observe = _unobserved
) -> grpc.aio.Server:
    """``server`` as seen by a generated ``add_*_to_server`` function, registering its
    services through generic handlers only, with ``lenient`` request decoding (see the
    module docstring), and each handler wrapped by ``observe``."""
    # The generated functions only call these two methods; the cast lets them type-check.
    return cast(grpc.aio.Server, _GenericOnly(server, lenient=lenient, observe=observe))


def _lenient(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    strict = handler.request_deserializer
    if strict is None:
        return handler
    decode = _decoder(strict)
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            handler.unary_unary,
            request_deserializer=decode,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            handler.unary_stream,
            request_deserializer=decode,
            response_serializer=handler.response_serializer,
        )
    return handler  # no client-streaming RPCs in the contract


def _decoder(strict: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def decode(body: bytes) -> Any:
        try:
            return strict(body)
        except DecodeError as error:  # corrupt wire format, invalid UTF-8 in a string
            return Undecodable(str(error) or "cannot be decoded")

    return decode
