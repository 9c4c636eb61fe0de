"""AuthService: end-user flows, translated between protos and the domain."""

from __future__ import annotations

from typing import Any

import grpc

from watchword.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from watchword_server.domain.accounts import Accounts
from watchword_server.domain.sessions import Sessions
from watchword_server.transport.convert import (
    call_context,
    struct_to_dict,
    timestamp,
    user_to_proto,
)

__all__ = ["AuthServicer"]

Context = grpc.aio.ServicerContext[Any, Any]


class AuthServicer(auth_service_pb2_grpc.AuthServiceServicer):
    """Serves AuthService; build it with ``build_servicer`` so errors map to statuses."""

    def __init__(self, accounts: Accounts, sessions: Sessions) -> None:
        self._accounts = accounts
        self._sessions = sessions

    async def Register(  # noqa: N802 - gRPC method names
        self, request: auth_service_pb2.RegisterRequest, context: Context
    ) -> auth_service_pb2.RegisterResponse:
        registration = await self._accounts.register(
            email=request.email,
            password=request.password,
            first_name=request.first_name,
            last_name=request.last_name,
            extra=struct_to_dict(request.extra),
            call=call_context(context, origin="auth"),
        )
        response = auth_service_pb2.RegisterResponse(user=user_to_proto(registration.user))
        if registration.session is not None:
            response.session_token = registration.session.token
            response.expire_time.CopyFrom(timestamp(registration.session.expire_time))
        return response

    async def Authenticate(  # noqa: N802
        self, request: auth_service_pb2.AuthenticateRequest, context: Context
    ) -> auth_service_pb2.AuthenticateResponse:
        login = await self._accounts.authenticate(
            email=request.email,
            password=request.password,
            remember=request.remember,
            call=call_context(context, origin="auth"),
        )
        return auth_service_pb2.AuthenticateResponse(
            session_token=login.session.token,
            expire_time=timestamp(login.session.expire_time),
            user=user_to_proto(login.user),
        )

    async def Introspect(  # noqa: N802
        self, request: auth_service_pb2.IntrospectRequest, context: Context
    ) -> auth_service_pb2.IntrospectResponse:
        result = await self._sessions.introspect(request.session_token)
        return auth_service_pb2.IntrospectResponse(
            user=user_to_proto(result.user), expire_time=timestamp(result.expire_time)
        )

    async def Logout(  # noqa: N802
        self, request: auth_service_pb2.LogoutRequest, context: Context
    ) -> auth_service_pb2.LogoutResponse:
        await self._accounts.logout(
            session_token=request.session_token, call=call_context(context, origin="auth")
        )
        return auth_service_pb2.LogoutResponse()
