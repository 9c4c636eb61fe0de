"""WebAuthn ceremonies through py_webauthn: the options handed to the browser, and the checks
of what the authenticator answered. Nothing here is stored or remembered: the caller keeps
the challenge (as a digest), the credential's public key and its signature counter.

User verification is required both ways: a passkey login is complete on its own, so the
authenticator must have checked its user (a PIN, a fingerprint), which makes it a
multi-factor cryptographic authenticator in NIST SP 800-63B's terms.
"""

from __future__ import annotations

import binascii
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

__all__ = [
    "Assertion",
    "CeremonyFailed",
    "MalformedCredential",
    "MAX_CREDENTIAL_ID",
    "NewCredential",
    "RelyingParty",
    "challenge_digest",
    "decode_challenge",
    "encode_challenge",
    "login_options",
    "new_challenge",
    "parse_assertion",
    "registration_challenge",
    "registration_options",
    "verify_assertion",
    "verify_registration",
]

_CHALLENGE_BYTES = 32
MAX_CREDENTIAL_ID = 1023
"""Bytes a credential id may have (WebAuthn Level 3, credentialIdLength)."""
# What a malformed credential may raise while it is decoded, besides py_webauthn's own.
_DECODING_ERRORS = (
    WebAuthnException,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    binascii.Error,
    InvalidSignature,
    UnsupportedAlgorithm,
)


class MalformedCredential(Exception):
    """The credential JSON is not a WebAuthn credential at all (the request is bad)."""


class CeremonyFailed(Exception):
    """The credential does not verify: wrong challenge, origin or relying party, a bad
    signature, no user verification, or a signature counter that went backwards."""


@dataclass(frozen=True)
class RelyingParty:
    """Who we are to authenticators, and how long a ceremony may take."""

    id: str
    name: str
    origins: tuple[str, ...]
    timeout_ms: int


@dataclass(frozen=True)
class NewCredential:
    """A verified registration: what to store to check later assertions."""

    credential_id: bytes
    public_key: bytes
    sign_count: int


@dataclass(frozen=True)
class Assertion:
    """A login credential, parsed but not verified: which credential it claims to be, and
    the user handle the authenticator returned (None when it sent none)."""

    credential: AuthenticationCredential
    credential_id: bytes
    user_handle: bytes | None


def new_challenge() -> bytes:
    """A fresh random challenge (256 bits)."""
    return secrets.token_bytes(_CHALLENGE_BYTES)


def challenge_digest(challenge: bytes) -> bytes:
    """The digest a challenge is stored and looked up under (never the challenge itself)."""
    return hashlib.sha256(challenge).digest()


def encode_challenge(challenge: bytes) -> str:
    """The challenge as the caller carries it: base64url without padding."""
    return bytes_to_base64url(challenge)


def decode_challenge(text: str) -> bytes | None:
    """The challenge bytes of ``encode_challenge``'s text; None for what cannot be one."""
    try:
        challenge = base64url_to_bytes(text)
    except _DECODING_ERRORS:
        return None
    return challenge if len(challenge) == _CHALLENGE_BYTES else None


def registration_options(
    party: RelyingParty,
    *,
    challenge: bytes,
    user_handle: bytes,
    user_name: str,
    display_name: str,
    exclude: Sequence[bytes],
) -> str:
    """PublicKeyCredentialCreationOptions as JSON, for a discoverable credential with user
    verification; the user's registered credentials are excluded, so an authenticator
    that holds one of them says so instead of registering it again."""
    options = generate_registration_options(
        rp_id=party.id,
        rp_name=party.name,
        user_id=user_handle,
        user_name=user_name,
        user_display_name=display_name,
        challenge=challenge,
        timeout=party.timeout_ms,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=item) for item in exclude],
    )
    return options_to_json(options)


def _registration(credential_json: str) -> RegistrationCredential:
    try:
        return parse_registration_credential_json(credential_json)
    except _DECODING_ERRORS as error:
        raise MalformedCredential(str(error)) from None


def registration_challenge(credential_json: str) -> bytes:
    """The challenge the registration credential answers (to find its ceremony)."""
    credential = _registration(credential_json)
    try:
        return parse_client_data_json(credential.response.client_data_json).challenge
    except _DECODING_ERRORS as error:
        raise MalformedCredential(f"clientDataJSON: {error}") from None


def verify_registration(
    party: RelyingParty, credential_json: str, *, challenge: bytes
) -> NewCredential:
    """Verify a new credential against its ceremony's challenge (attestation "none")."""
    credential = _registration(credential_json)
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=party.id,
            expected_origin=list(party.origins),
            require_user_verification=True,
        )
    except _DECODING_ERRORS as error:
        raise CeremonyFailed(str(error)) from None
    if len(verified.credential_id) > MAX_CREDENTIAL_ID:
        raise CeremonyFailed("the credential id is longer than WebAuthn allows")
    return NewCredential(
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
    )


def login_options(party: RelyingParty, *, challenge: bytes, allow: Sequence[bytes]) -> str:
    """PublicKeyCredentialRequestOptions as JSON: ``allow`` names the credentials to use
    (none: the authenticator offers its discoverable ones); user verification required."""
    options = generate_authentication_options(
        rp_id=party.id,
        challenge=challenge,
        timeout=party.timeout_ms,
        allow_credentials=[PublicKeyCredentialDescriptor(id=item) for item in allow],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return options_to_json(options)


def parse_assertion(credential_json: str) -> Assertion:
    """The login credential's claims, unverified (to find its passkey)."""
    try:
        credential = parse_authentication_credential_json(credential_json)
    except _DECODING_ERRORS as error:
        raise MalformedCredential(str(error)) from None
    handle = credential.response.user_handle
    return Assertion(
        credential=credential,
        credential_id=bytes(credential.raw_id),
        user_handle=bytes(handle) if handle else None,
    )


def verify_assertion(
    party: RelyingParty,
    assertion: Assertion,
    *,
    challenge: bytes,
    public_key: bytes,
    sign_count: int,
) -> int:
    """Verify a login assertion with the stored key; returns the new signature counter.

    A counter that did not grow (when either side counts) fails: the assertion is a
    replay, or the authenticator was cloned.
    """
    try:
        verified = verify_authentication_response(
            credential=assertion.credential,
            expected_challenge=challenge,
            expected_rp_id=party.id,
            expected_origin=list(party.origins),
            credential_public_key=public_key,
            credential_current_sign_count=sign_count,
            require_user_verification=True,
        )
    except _DECODING_ERRORS as error:
        raise CeremonyFailed(str(error)) from None
    return int(verified.new_sign_count)
