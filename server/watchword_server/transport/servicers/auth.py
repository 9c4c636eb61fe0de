"""AuthService: end-user flows, translated between protos and the domain."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import grpc

from watchword.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from watchword_server.domain.accounts.accounts import Accounts
from watchword_server.domain.accounts.passkeys import Passkeys
from watchword_server.domain.accounts.password_flows import PasswordFlows
from watchword_server.domain.accounts.profile import Profiles
from watchword_server.domain.accounts.second_factors import SecondFactors
from watchword_server.domain.accounts.sessions import Sessions
from watchword_server.model.records import CallContext, PasskeyRecord
from watchword_server.transport.convert import (
    call_context,
    methods_to_proto,
    struct_to_dict,
    timestamp,
)
from watchword_server.transport.servicers.user_views import UserViews

__all__ = ["AuthServicer"]

Context = grpc.aio.ServicerContext[Any, Any]


class AuthServicer(auth_service_pb2_grpc.AuthServiceServicer):
    """Serves AuthService; wrap it with ``wrap_servicer`` so errors map to statuses."""

    def __init__(
        self,
        accounts: Accounts,
        sessions: Sessions,
        passwords: PasswordFlows,
        profiles: Profiles,
        second_factors: SecondFactors,
        passkeys: Passkeys,
        hidden_fields: Collection[str] = (),
    ) -> None:
        self._second_factors = second_factors
        self._passkeys = passkeys
        self._accounts = accounts
        self._sessions = sessions
        self._passwords = passwords
        self._profiles = profiles
        # Custom fields declared unreadable stay out of everything users see of themselves.
        self._user_views = UserViews(hidden_fields)

    def _call(self) -> CallContext:
        return call_context(origin="auth")

    async def Register(  # noqa: N802 - gRPC method names
        self, request: auth_service_pb2.RegisterRequest, context: Context
    ) -> auth_service_pb2.RegisterResponse:
        registration = await self._accounts.register(
            email=request.email,
            password=request.password,
            first_name=request.first_name,
            last_name=request.last_name,
            extra=struct_to_dict(request.extra),
            call=self._call(),
        )
        response = auth_service_pb2.RegisterResponse(user=self._user_views.of(registration.user))
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
            call=self._call(),
        )
        if login.second_factor is not None:
            pending = login.second_factor
            # No user yet: the account is not the caller's until the second factor.
            return auth_service_pb2.AuthenticateResponse(
                expire_time=timestamp(pending.expire_time),
                second_factor_challenge=pending.challenge,
                second_factor_methods=methods_to_proto(pending.methods),  # type: ignore[arg-type]
            )
        if login.session is None:  # Accounts gives one or the other
            raise RuntimeError("a login without a session or a challenge")
        return auth_service_pb2.AuthenticateResponse(
            session_token=login.session.token,
            expire_time=timestamp(login.session.expire_time),
            user=self._user_views.of(login.user),
        )

    async def Introspect(  # noqa: N802
        self, request: auth_service_pb2.IntrospectRequest, context: Context
    ) -> auth_service_pb2.IntrospectResponse:
        result = await self._sessions.introspect(request.session_token)
        return self._user_views.introspection(result.user, result.expire_time)

    async def Logout(  # noqa: N802
        self, request: auth_service_pb2.LogoutRequest, context: Context
    ) -> auth_service_pb2.LogoutResponse:
        await self._accounts.logout(session_token=request.session_token, call=self._call())
        return auth_service_pb2.LogoutResponse()

    async def Verify(  # noqa: N802
        self, request: auth_service_pb2.VerifyRequest, context: Context
    ) -> auth_service_pb2.VerifyResponse:
        user = await self._accounts.verify(
            verification_key=request.verification_key, call=self._call()
        )
        return auth_service_pb2.VerifyResponse(user=self._user_views.of(user))

    async def RequestPasswordReset(  # noqa: N802
        self, request: auth_service_pb2.RequestPasswordResetRequest, context: Context
    ) -> auth_service_pb2.RequestPasswordResetResponse:
        await self._passwords.request_reset(email=request.email, call=self._call())
        return auth_service_pb2.RequestPasswordResetResponse()

    async def ResetPassword(  # noqa: N802
        self, request: auth_service_pb2.ResetPasswordRequest, context: Context
    ) -> auth_service_pb2.ResetPasswordResponse:
        user = await self._passwords.reset(
            reset_key=request.reset_key,
            new_password=request.new_password,
            call=self._call(),
        )
        return auth_service_pb2.ResetPasswordResponse(user=self._user_views.of(user))

    async def ChangePassword(  # noqa: N802
        self, request: auth_service_pb2.ChangePasswordRequest, context: Context
    ) -> auth_service_pb2.ChangePasswordResponse:
        await self._passwords.change(
            session_token=request.session_token,
            old_password=request.old_password,
            new_password=request.new_password,
            call=self._call(),
        )
        return auth_service_pb2.ChangePasswordResponse()

    async def GetProfile(  # noqa: N802
        self, request: auth_service_pb2.GetProfileRequest, context: Context
    ) -> auth_service_pb2.GetProfileResponse:
        user = await self._profiles.get(session_token=request.session_token)
        return auth_service_pb2.GetProfileResponse(user=self._user_views.of(user))

    async def UpdateProfile(  # noqa: N802
        self, request: auth_service_pb2.UpdateProfileRequest, context: Context
    ) -> auth_service_pb2.UpdateProfileResponse:
        user = await self._profiles.update(
            session_token=request.session_token,
            paths=list(request.update_mask.paths),
            first_name=request.user.first_name,
            last_name=request.user.last_name,
            extra=struct_to_dict(request.user.extra, "user.extra"),
            call=self._call(),
        )
        return auth_service_pb2.UpdateProfileResponse(user=self._user_views.of(user))

    async def EnrollTotp(  # noqa: N802
        self, request: auth_service_pb2.EnrollTotpRequest, context: Context
    ) -> auth_service_pb2.EnrollTotpResponse:
        enrollment = await self._second_factors.enroll(
            session_token=request.session_token, call=self._call()
        )
        return auth_service_pb2.EnrollTotpResponse(
            secret=enrollment.secret, otpauth_uri=enrollment.otpauth_uri
        )

    async def ConfirmTotp(  # noqa: N802
        self, request: auth_service_pb2.ConfirmTotpRequest, context: Context
    ) -> auth_service_pb2.ConfirmTotpResponse:
        codes = await self._second_factors.confirm(
            session_token=request.session_token, code=request.code, call=self._call()
        )
        return auth_service_pb2.ConfirmTotpResponse(recovery_codes=codes)

    async def DisableTotp(  # noqa: N802
        self, request: auth_service_pb2.DisableTotpRequest, context: Context
    ) -> auth_service_pb2.DisableTotpResponse:
        proof = request.WhichOneof("proof")
        await self._second_factors.disable(
            session_token=request.session_token,
            code=request.code if proof == "code" else None,
            password=request.password if proof == "password" else None,
            call=self._call(),
        )
        return auth_service_pb2.DisableTotpResponse()

    async def RegenerateRecoveryCodes(  # noqa: N802
        self, request: auth_service_pb2.RegenerateRecoveryCodesRequest, context: Context
    ) -> auth_service_pb2.RegenerateRecoveryCodesResponse:
        codes = await self._second_factors.regenerate(
            session_token=request.session_token, code=request.code, call=self._call()
        )
        return auth_service_pb2.RegenerateRecoveryCodesResponse(recovery_codes=codes)

    async def CompleteSecondFactor(  # noqa: N802
        self, request: auth_service_pb2.CompleteSecondFactorRequest, context: Context
    ) -> auth_service_pb2.CompleteSecondFactorResponse:
        factor = request.WhichOneof("factor")
        user, session = await self._second_factors.complete(
            challenge=request.challenge,
            totp_code=request.totp_code if factor == "totp_code" else None,
            recovery_code=request.recovery_code if factor == "recovery_code" else None,
            call=self._call(),
        )
        return auth_service_pb2.CompleteSecondFactorResponse(
            session_token=session.token,
            expire_time=timestamp(session.expire_time),
            user=self._user_views.of(user),
        )

    async def BeginPasskeyRegistration(  # noqa: N802
        self, request: auth_service_pb2.BeginPasskeyRegistrationRequest, context: Context
    ) -> auth_service_pb2.BeginPasskeyRegistrationResponse:
        options = await self._passkeys.begin_registration(session_token=request.session_token)
        return auth_service_pb2.BeginPasskeyRegistrationResponse(options_json=options)

    async def FinishPasskeyRegistration(  # noqa: N802
        self, request: auth_service_pb2.FinishPasskeyRegistrationRequest, context: Context
    ) -> auth_service_pb2.FinishPasskeyRegistrationResponse:
        passkey = await self._passkeys.finish_registration(
            session_token=request.session_token,
            credential_json=request.credential_json,
            name=request.name,
            call=self._call(),
        )
        return auth_service_pb2.FinishPasskeyRegistrationResponse(passkey=_passkey(passkey))

    async def BeginPasskeyLogin(  # noqa: N802
        self, request: auth_service_pb2.BeginPasskeyLoginRequest, context: Context
    ) -> auth_service_pb2.BeginPasskeyLoginResponse:
        challenge, options = await self._passkeys.begin_login(email=request.email)
        return auth_service_pb2.BeginPasskeyLoginResponse(challenge=challenge, options_json=options)

    async def FinishPasskeyLogin(  # noqa: N802
        self, request: auth_service_pb2.FinishPasskeyLoginRequest, context: Context
    ) -> auth_service_pb2.FinishPasskeyLoginResponse:
        user, session = await self._passkeys.finish_login(
            challenge=request.challenge,
            credential_json=request.credential_json,
            remember=request.remember,
            call=self._call(),
        )
        return auth_service_pb2.FinishPasskeyLoginResponse(
            session_token=session.token,
            expire_time=timestamp(session.expire_time),
            user=self._user_views.of(user),
        )

    async def ListPasskeys(  # noqa: N802
        self, request: auth_service_pb2.ListPasskeysRequest, context: Context
    ) -> auth_service_pb2.ListPasskeysResponse:
        passkeys = await self._passkeys.list(session_token=request.session_token)
        return auth_service_pb2.ListPasskeysResponse(passkeys=[_passkey(p) for p in passkeys])

    async def DeletePasskey(  # noqa: N802
        self, request: auth_service_pb2.DeletePasskeyRequest, context: Context
    ) -> auth_service_pb2.DeletePasskeyResponse:
        await self._passkeys.delete(
            session_token=request.session_token,
            passkey_id=request.passkey_id,
            call=self._call(),
        )
        return auth_service_pb2.DeletePasskeyResponse()


def _passkey(record: PasskeyRecord) -> auth_service_pb2.Passkey:
    passkey = auth_service_pb2.Passkey(
        id=str(record.id), name=record.name, create_time=timestamp(record.create_time)
    )
    if record.last_used_time is not None:
        passkey.last_used_time.CopyFrom(timestamp(record.last_used_time))
    return passkey
