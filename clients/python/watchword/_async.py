"""The asyncio client: AuthService and AccessService methods, on top of the admin ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from watchword._async_admin import AsyncAdminMethods
from watchword._base import (
    USE_CLIENT_DEFAULT,
    CallMetadata,
    Timeout,
    mask_of,
    membership_request,
    permission_request,
    struct_of,
)
from watchword._checks import AnyCheck, CheckResult, batch_request, results_of
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword.auth.v1 import resources_pb2

__all__ = ["AsyncClient"]

_DEFAULT = USE_CLIENT_DEFAULT


class AsyncClient(AsyncAdminMethods):
    """An asyncio client for all three Watchword services over one channel.

    Every RPC has a coroutine method with keyword-only arguments that returns the natural
    value (a ``User``, a ``bool``, ``None``...) and raises a :class:`watchword.WatchwordError`
    subclass when the call fails. Each method also takes ``timeout`` (seconds; ``None``
    for no deadline; the client's default when omitted) and ``metadata`` (added to the
    client's own).

    Args:
        target: The server's address, e.g. ``"localhost:50051"``.
        service_key: Sent as ``authorization: Bearer <key>`` with every call; needed by
            AccessService and AdminService (AuthService ignores it unless the server
            sets ``auth_requires_key``).
        credentials: TLS channel credentials; without them the channel is insecure.
        channel: A ready ``grpc.aio`` channel to use instead of opening one; ``close()``
            leaves it open.
        timeout: The default deadline of each call, in seconds; ``None`` for none.
        metadata: Metadata sent with every call.
        options: gRPC channel options, e.g. ``[("grpc.enable_retries", 1)]``.
        read_your_writes: Whether the checks made through this client see its own writes.
            By default (``True``), ``has_membership``, ``has_permission`` and
            ``batch_check`` send the revision of the client's latest AdminService write
            (:attr:`last_revision`: of concurrent writes, the last to complete) as
            ``min_revision`` for 60 seconds after it, so that no server of the deployment
            answers them from a cached state older than the write; after that the
            server's own bound on cached answers (``check_cache_max_staleness``) covers
            it. A number sets that window in seconds (keep it above the server's bound);
            ``False`` never sends it. A check's own ``min_revision`` argument always wins.

    Example::

        async with AsyncClient("localhost:50051", service_key=key) as client:
            login = await client.authenticate(email=email, password=password)
            if await client.has_membership(group="editors", session_token=login.session_token):
                ...
    """

    # AuthService.

    async def register(
        self,
        *,
        email: str,
        password: str,
        first_name: str = "",
        last_name: str = "",
        extra: Mapping[str, Any] | None = None,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> auth.RegisterResponse:
        """Register a user; the response has a session only when the user is ACTIVE at once."""
        request = auth.RegisterRequest(
            email=email,
            password=password,
            first_name=first_name,
            last_name=last_name,
            extra=struct_of(extra),
        )
        return await self._unary(self._auth.Register, request, timeout, metadata)

    async def verify(
        self, *, verification_key: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> resources_pb2.User:
        """Confirm an e-mail address with the mailed verification key."""
        request = auth.VerifyRequest(verification_key=verification_key)
        return (await self._unary(self._auth.Verify, request, timeout, metadata)).user

    async def authenticate(
        self,
        *,
        email: str,
        password: str,
        remember: bool = False,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> auth.AuthenticateResponse:
        """Log in: a session token, its expiry and the user; or, for a user with a second
        factor, no session but ``second_factor_challenge`` and ``second_factor_methods``:
        finish with ``complete_second_factor``.

        Raises:
            Unauthenticated: ``reason == "INVALID_CREDENTIALS"`` for a wrong e-mail or password.
            FailedPrecondition: The account is pending, disabled or blocked.
        """
        request = auth.AuthenticateRequest(email=email, password=password, remember=remember)
        return await self._unary(self._auth.Authenticate, request, timeout, metadata)

    async def introspect(
        self, *, session_token: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> auth.IntrospectResponse:
        """Validate a session (and slide its window): the user and the new expiry.

        Raises:
            Unauthenticated: ``reason == "SESSION_INVALID"``.
        """
        request = auth.IntrospectRequest(session_token=session_token)
        return await self._unary(self._auth.Introspect, request, timeout, metadata)

    async def logout(
        self, *, session_token: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> None:
        """Revoke a session."""
        request = auth.LogoutRequest(session_token=session_token)
        await self._unary(self._auth.Logout, request, timeout, metadata)

    async def request_password_reset(
        self, *, email: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> None:
        """Mail a reset key (succeeds for unknown addresses too)."""
        request = auth.RequestPasswordResetRequest(email=email)
        await self._unary(self._auth.RequestPasswordReset, request, timeout, metadata)

    async def reset_password(
        self,
        *,
        reset_key: str,
        new_password: str,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> resources_pb2.User:
        """Set a new password with a mailed reset key; revokes the user's sessions."""
        request = auth.ResetPasswordRequest(reset_key=reset_key, new_password=new_password)
        return (await self._unary(self._auth.ResetPassword, request, timeout, metadata)).user

    async def change_password(
        self,
        *,
        session_token: str,
        old_password: str,
        new_password: str,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> None:
        """Change the password; revokes the user's other sessions."""
        request = auth.ChangePasswordRequest(
            session_token=session_token, old_password=old_password, new_password=new_password
        )
        await self._unary(self._auth.ChangePassword, request, timeout, metadata)

    async def get_profile(
        self, *, session_token: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> resources_pb2.User:
        """The session's user."""
        request = auth.GetProfileRequest(session_token=session_token)
        return (await self._unary(self._auth.GetProfile, request, timeout, metadata)).user

    async def update_profile(
        self,
        *,
        session_token: str,
        user: resources_pb2.User,
        update_mask: Sequence[str] = (),
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> resources_pb2.User:
        """Update the session user's names and custom fields (without a mask: those set)."""
        request = auth.UpdateProfileRequest(
            session_token=session_token, user=user, update_mask=mask_of(update_mask)
        )
        return (await self._unary(self._auth.UpdateProfile, request, timeout, metadata)).user

    # Second factors (TOTP and recovery codes).

    async def enroll_totp(
        self, *, session_token: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> auth.EnrollTotpResponse:
        """A new TOTP secret and its ``otpauth://`` URI; in effect once ``confirm_totp``ed."""
        request = auth.EnrollTotpRequest(session_token=session_token)
        return await self._unary(self._auth.EnrollTotp, request, timeout, metadata)

    async def confirm_totp(
        self,
        *,
        session_token: str,
        code: str,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> list[str]:
        """Turn TOTP on with a first code; returns the recovery codes (shown this once).

        Raises:
            Unauthenticated: ``reason == "SECOND_FACTOR_INVALID"`` for a wrong code.
        """
        request = auth.ConfirmTotpRequest(session_token=session_token, code=code)
        reply = await self._unary(self._auth.ConfirmTotp, request, timeout, metadata)
        return list(reply.recovery_codes)

    async def disable_totp(
        self,
        *,
        session_token: str,
        code: str | None = None,
        password: str | None = None,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> None:
        """Turn TOTP off with a current ``code`` or the ``password`` (give one)."""
        request = auth.DisableTotpRequest(session_token=session_token)
        if code is not None:
            request.code = code
        elif password is not None:
            request.password = password
        await self._unary(self._auth.DisableTotp, request, timeout, metadata)

    async def regenerate_recovery_codes(
        self,
        *,
        session_token: str,
        code: str,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> list[str]:
        """A new set of recovery codes (the old set stops working)."""
        request = auth.RegenerateRecoveryCodesRequest(session_token=session_token, code=code)
        reply = await self._unary(self._auth.RegenerateRecoveryCodes, request, timeout, metadata)
        return list(reply.recovery_codes)

    async def complete_second_factor(
        self,
        *,
        challenge: str,
        totp_code: str | None = None,
        recovery_code: str | None = None,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> auth.CompleteSecondFactorResponse:
        """Finish a login ``authenticate`` answered with a challenge: the session.

        Raises:
            Unauthenticated: ``reason == "SECOND_FACTOR_INVALID"`` for a wrong, replayed or
                expired code or challenge.
        """
        request = auth.CompleteSecondFactorRequest(challenge=challenge)
        if totp_code is not None:
            request.totp_code = totp_code
        elif recovery_code is not None:
            request.recovery_code = recovery_code
        return await self._unary(self._auth.CompleteSecondFactor, request, timeout, metadata)

    # AuthService: passkeys (WebAuthn).

    async def begin_passkey_registration(
        self, *, session_token: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> str:
        """The WebAuthn creation options (JSON) for navigator.credentials.create()."""
        request = auth.BeginPasskeyRegistrationRequest(session_token=session_token)
        response = await self._unary(
            self._auth.BeginPasskeyRegistration, request, timeout, metadata
        )
        return response.options_json

    async def finish_passkey_registration(
        self,
        *,
        session_token: str,
        credential_json: str,
        name: str,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> auth.Passkey:
        """Register the new credential (its JSON from the browser) under ``name``.

        Raises:
            Unauthenticated: ``reason == "SECOND_FACTOR_INVALID"``: the challenge is wrong,
                used or expired, or the credential does not verify.
            AlreadyExists: ``reason == "PASSKEY_ALREADY_REGISTERED"``.
        """
        request = auth.FinishPasskeyRegistrationRequest(
            session_token=session_token, credential_json=credential_json, name=name
        )
        response = await self._unary(
            self._auth.FinishPasskeyRegistration, request, timeout, metadata
        )
        return response.passkey

    async def begin_passkey_login(
        self, *, email: str = "", timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> auth.BeginPasskeyLoginResponse:
        """A login challenge and the options (JSON) for navigator.credentials.get(); without
        ``email``, for a discoverable credential."""
        request = auth.BeginPasskeyLoginRequest(email=email)
        return await self._unary(self._auth.BeginPasskeyLogin, request, timeout, metadata)

    async def finish_passkey_login(
        self,
        *,
        challenge: str,
        credential_json: str,
        remember: bool = False,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> auth.FinishPasskeyLoginResponse:
        """Log in with the assertion (its JSON from the browser): a session, as authenticate.

        Raises:
            Unauthenticated: ``reason == "SECOND_FACTOR_INVALID"``.
            FailedPrecondition: The account is pending, disabled or blocked.
        """
        request = auth.FinishPasskeyLoginRequest(
            challenge=challenge, credential_json=credential_json, remember=remember
        )
        return await self._unary(self._auth.FinishPasskeyLogin, request, timeout, metadata)

    async def list_passkeys(
        self, *, session_token: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> list[auth.Passkey]:
        """The session user's passkeys, oldest first."""
        request = auth.ListPasskeysRequest(session_token=session_token)
        response = await self._unary(self._auth.ListPasskeys, request, timeout, metadata)
        return list(response.passkeys)

    async def delete_passkey(
        self,
        *,
        session_token: str,
        passkey_id: str,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> None:
        """Delete one of the session user's passkeys (NotFound ``PASSKEY_NOT_FOUND``)."""
        request = auth.DeletePasskeyRequest(session_token=session_token, passkey_id=passkey_id)
        await self._unary(self._auth.DeletePasskey, request, timeout, metadata)

    # AccessService.

    async def has_membership(
        self,
        *,
        group: str,
        user_id: str | None = None,
        session_token: str | None = None,
        min_revision: str | None = None,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> bool:
        """Whether a subject (exactly one of ``user_id``, ``session_token``) is in ``group``.

        ``min_revision`` (a revision from a write) asks for an answer at least that new;
        ``""`` takes any cached answer; by default the client's (see ``read_your_writes``).

        Raises:
            ValueError: Not exactly one subject was given.
            Unauthenticated: ``reason == "SESSION_INVALID"`` for a bad ``session_token``.
        """
        request = membership_request(
            group=group,
            user_id=user_id,
            session_token=session_token,
            min_revision=self._min_revision(min_revision),
        )
        return (await self._unary(self._access.HasMembership, request, timeout, metadata)).member

    async def has_permission(
        self,
        *,
        name: str,
        table_name: str = "",
        record_id: str = "",
        user_id: str | None = None,
        session_token: str | None = None,
        group: str | None = None,
        min_revision: str | None = None,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> bool:
        """Whether a subject (exactly one of ``user_id``, ``session_token``, ``group``) may.

        ``min_revision`` is as for :meth:`has_membership`.

        Raises:
            ValueError: Not exactly one subject was given.
            Unauthenticated: ``reason == "SESSION_INVALID"`` for a bad ``session_token``.
        """
        request = permission_request(
            name=name,
            table_name=table_name,
            record_id=record_id,
            user_id=user_id,
            session_token=session_token,
            group=group,
            min_revision=self._min_revision(min_revision),
        )
        return (await self._unary(self._access.HasPermission, request, timeout, metadata)).allowed

    async def batch_check(
        self,
        *,
        checks: Sequence[AnyCheck],
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> list[CheckResult]:
        """Make up to 100 checks in one call: a result per check, in their order.

        Each check is a :class:`watchword.MembershipCheck` or a
        :class:`watchword.PermissionCheck` with its own subject. A check that cannot be
        answered does not fail the call: its result's ``error`` is the exception the single
        call would have raised (e.g. ``Unauthenticated`` ``SESSION_INVALID``) and its
        ``allowed`` is False. No checks: no call, no results.

        Example::

            admin, may_edit = await client.batch_check(
                checks=[
                    MembershipCheck("admins", session_token=token),
                    PermissionCheck("edit", "Post", "7", session_token=token),
                ]
            )
            if admin.error is not None:
                raise admin.error

        Raises:
            ValueError: More than 100 checks (split them), or not exactly one subject.
            TypeError: An item that is not a MembershipCheck or a PermissionCheck.
            WatchwordError: The call itself failed (e.g. ``Unavailable``).
        """
        checks = list(checks)
        request = batch_request(checks, self._min_revision)
        if not checks:
            return []
        reply = await self._unary(self._access.BatchCheck, request, timeout, metadata)
        return results_of(reply, len(checks))
