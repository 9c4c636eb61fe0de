"""A software passkey for the end-to-end tests: soft-webauthn's authenticator, speaking the
JSON that a browser's ``PublicKeyCredential.toJSON()`` gives and the server's options JSON.

soft-webauthn signs with a real P-256 key and keeps a real signature counter, but never
sets the user-verified flag (a passkey checks its user with a PIN or a fingerprint, and
the server requires it): ``Authenticator`` sets it, and re-signs, unless told not to.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor  # type: ignore[import-untyped]
from soft_webauthn import SoftWebauthnDevice  # type: ignore[import-untyped]

__all__ = ["ORIGIN", "Authenticator", "b64url", "unb64url"]

ORIGIN = "http://localhost:8000"  # the server's default webauthn_origins

_USER_PRESENT = 0x01
_USER_VERIFIED = 0x04
_FLAGS_AT = 32  # the flags byte follows the 32-byte RP id hash in authenticator data


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _with_flags(auth_data: bytes, verified: bool) -> bytes:
    flags = auth_data[_FLAGS_AT] | _USER_PRESENT
    flags = flags | _USER_VERIFIED if verified else flags & ~_USER_VERIFIED
    return auth_data[:_FLAGS_AT] + bytes([flags]) + auth_data[_FLAGS_AT + 1 :]


class Authenticator(SoftWebauthnDevice):  # type: ignore[misc]
    """One discoverable credential, created by ``register`` and used by ``sign_in``."""

    def __init__(self) -> None:
        super().__init__()
        self.verifies_user = True

    @property
    def credential_b64(self) -> str:
        assert self.credential_id is not None
        return b64url(self.credential_id)

    def register(self, options_json: str, *, origin: str = ORIGIN, again: bool = False) -> str:
        """The RegistrationResponseJSON for the creation options; ``again`` answers with
        the credential it holds already (as a careless or hostile client might) instead of
        a new one."""
        options = json.loads(options_json)
        public_key: dict[str, Any] = {
            **options,
            "challenge": unb64url(options["challenge"]),
            "user": {**options["user"], "id": unb64url(options["user"]["id"])},
        }
        creator = _Again(self) if again else self
        made = SoftWebauthnDevice.create(creator, {"publicKey": public_key}, origin)
        attestation = cbor.decode(made["response"]["attestationObject"])
        attestation["authData"] = _with_flags(attestation["authData"], self.verifies_user)
        return json.dumps(
            {
                "id": b64url(made["rawId"]),
                "rawId": b64url(made["rawId"]),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64url(made["response"]["clientDataJSON"]),
                    "attestationObject": b64url(cbor.encode(attestation)),
                },
                "clientExtensionResults": {},
            }
        )

    def sign_in(self, options_json: str, *, origin: str = ORIGIN) -> str:
        """The AuthenticationResponseJSON for the request options (the counter grows)."""
        options = json.loads(options_json)
        public_key = {**options, "challenge": unb64url(options["challenge"])}
        made = super().get({"publicKey": public_key}, origin)
        response = made["response"]
        auth_data = _with_flags(response["authenticatorData"], self.verifies_user)
        client_data = response["clientDataJSON"]
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = self.private_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return json.dumps(
            {
                "id": b64url(made["rawId"]),
                "rawId": b64url(made["rawId"]),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64url(client_data),
                    "authenticatorData": b64url(auth_data),
                    "signature": b64url(signature),
                    "userHandle": b64url(response["userHandle"]),
                },
                "clientExtensionResults": {},
            }
        )


class _Again:
    """The authenticator as ``SoftWebauthnDevice.create`` sees it, but keeping the
    credential it holds (``cred_init`` does nothing)."""

    def __init__(self, device: Authenticator) -> None:
        self.__dict__.update(device.__dict__)

    def cred_init(self, rp_id: str, user_handle: bytes) -> None:
        return None
