"""Password hashing with a server-side pepper, pepper rotation and legacy import.

Stored hashes are self-describing, so the algorithm, its parameters and the
pepper key id can change without invalidating existing credentials:

* ``hmac-bcrypt$<key_id>$<bcrypt hash>``: bcrypt over
  ``base64(HMAC-SHA256(pepper, NFC(password)))``. The fixed-size pre-hash means
  passwords longer than bcrypt's 72-byte limit are never silently truncated,
  and base64 keeps NUL bytes away from bcrypt's C-string input.
* ``hmac-pbkdf2(<iterations>,<length>,<hash>)$<key_id>$<salt hex>$<hex>``:
  PBKDF2 over ``HMAC-SHA256(pepper, NFC(password))`` with a 16-byte salt.
* ``pbkdf2(<iterations>,<length>,<hash>)$<salt>$<hex>``: the legacy Emmett
  format, accepted for verification only so imported users can log in once
  and be rehashed; it is never produced.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

import bcrypt

__all__ = [
    "Algorithm",
    "BcryptAlgorithm",
    "PasswordHasher",
    "Pbkdf2Algorithm",
    "Pepper",
    "parse_algorithm",
]

_PBKDF2_HASH_NAMES: Final = frozenset({"sha1", "sha256", "sha384", "sha512"})

_BCRYPT_MIN_COST: Final = 4
_BCRYPT_MAX_COST: Final = 31
# NIST SP 800-132 floor; anything lower is a configuration mistake.
_PBKDF2_MIN_ITERATIONS: Final = 1_000
# Caps what a hostile or corrupt stored string can make a worker thread do.
_PBKDF2_MAX_ITERATIONS: Final = 10_000_000
_PBKDF2_MIN_LENGTH: Final = 16
_PBKDF2_MAX_LENGTH: Final = 128
_LEGACY_MAX_LENGTH: Final = 1024
_SALT_BYTES: Final = 16
_PEPPER_MIN_KEY_BYTES: Final = 16

_BCRYPT_PREFIX: Final = "hmac-bcrypt"
_PBKDF2_PREFIX: Final = "hmac-"

_BCRYPT_SPEC_RE: Final = re.compile(r"bcrypt\(\s*(\d{1,3})\s*\)")
_PBKDF2_SPEC_RE: Final = re.compile(
    r"pbkdf2\(\s*(\d{1,9})\s*,\s*(\d{1,5})\s*,\s*([a-z0-9]{1,16})\s*\)"
)
_BCRYPT_HASH_RE: Final = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
_KEY_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX_RE: Final = re.compile(r"[0-9a-fA-F]+")
_LEGACY_SALT_RE: Final = re.compile(r"[\x21-\x7e]+")

_NO_RETIRED_PEPPERS: Final[Mapping[str, bytes]] = MappingProxyType({})


@dataclass(frozen=True)
class Pepper:
    """A secret key mixed into every password hash, named so it can be rotated.

    Attributes:
        key_id: Short identifier recorded in each hash (letters, digits, ``._-``).
        key: The secret key, at least 16 bytes; hidden from ``repr``.
    """

    key_id: str
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_key_id(self.key_id)
        _check_key(self.key_id, self.key)


@dataclass(frozen=True)
class BcryptAlgorithm:
    """bcrypt with a given cost factor.

    Attributes:
        cost: The log2 work factor, 4 to 31.
    """

    cost: int

    @property
    def spec(self) -> str:
        """The canonical setting string, e.g. ``bcrypt(12)``."""
        return f"bcrypt({self.cost})"


@dataclass(frozen=True)
class Pbkdf2Algorithm:
    """PBKDF2-HMAC with given iterations, output length and hash function.

    Attributes:
        iterations: Number of PBKDF2 iterations.
        length: Derived key length in bytes.
        hash_name: One of ``sha1``, ``sha256``, ``sha384``, ``sha512``.
    """

    iterations: int
    length: int
    hash_name: str

    @property
    def spec(self) -> str:
        """The canonical setting string, e.g. ``pbkdf2(600000,32,sha256)``."""
        return f"pbkdf2({self.iterations},{self.length},{self.hash_name})"


Algorithm = BcryptAlgorithm | Pbkdf2Algorithm


def parse_algorithm(text: str) -> Algorithm:
    """Parse and validate a password hashing setting.

    Args:
        text: ``bcrypt(COST)`` with COST in 4..31, or
            ``pbkdf2(ITERATIONS,LENGTH,HASH)`` with ITERATIONS in
            1000..10000000, LENGTH in 16..128 and HASH one of sha1, sha256,
            sha384, sha512.

    Returns:
        The parsed algorithm.

    Raises:
        ValueError: If the text is not a supported algorithm or a parameter
            is out of range.
    """
    stripped = text.strip()
    if match := _BCRYPT_SPEC_RE.fullmatch(stripped):
        cost = int(match.group(1))
        if not _BCRYPT_MIN_COST <= cost <= _BCRYPT_MAX_COST:
            raise ValueError(
                f"bcrypt cost must be between {_BCRYPT_MIN_COST} and "
                f"{_BCRYPT_MAX_COST}, got {cost} in {text!r}"
            )
        return BcryptAlgorithm(cost)
    if match := _PBKDF2_SPEC_RE.fullmatch(stripped):
        algorithm = Pbkdf2Algorithm(int(match.group(1)), int(match.group(2)), match.group(3))
        problem = _pbkdf2_problem(algorithm, _PBKDF2_MIN_ITERATIONS, _PBKDF2_MAX_LENGTH)
        if problem is None and algorithm.length < _PBKDF2_MIN_LENGTH:
            problem = f"length must be at least {_PBKDF2_MIN_LENGTH} bytes"
        if problem is not None:
            raise ValueError(f"invalid password algorithm {text!r}: {problem}")
        return algorithm
    raise ValueError(
        f"invalid password algorithm {text!r}: expected 'bcrypt(COST)' or "
        "'pbkdf2(ITERATIONS,LENGTH,HASH)', e.g. 'bcrypt(12)' or "
        "'pbkdf2(600000,32,sha256)'"
    )


class PasswordHasher:
    """Hashes and verifies passwords with the configured algorithm and pepper.

    ``hash``, ``verify`` and ``verify_dummy`` are CPU-bound and blocking;
    async callers should run them in a worker thread.
    """

    def __init__(
        self,
        algorithm: str,
        pepper: Pepper,
        retired_peppers: Mapping[str, bytes] = _NO_RETIRED_PEPPERS,
    ) -> None:
        """Create a hasher.

        Args:
            algorithm: Setting string accepted by :func:`parse_algorithm`.
            pepper: The current pepper, used for all new hashes.
            retired_peppers: Older peppers by key id, still accepted for
                verification; hashes using them report ``needs_rehash``.

        Raises:
            ValueError: If the algorithm string is invalid, a retired key id or
                key is malformed, or a retired key id reuses the current id
                with a different key.
        """
        self._algorithm: Final = parse_algorithm(algorithm)
        self._pepper: Final = pepper
        keys = {pepper.key_id: pepper.key}
        for key_id, key in retired_peppers.items():
            _check_key_id(key_id)
            _check_key(key_id, key)
            if key_id == pepper.key_id and not hmac.compare_digest(key, pepper.key):
                raise ValueError(f"retired pepper {key_id!r} reuses the current pepper's key id")
            keys.setdefault(key_id, key)
        self._keys: Final[Mapping[str, bytes]] = MappingProxyType(keys)
        # A real hash of a random password, so unknown-user checks cost the same.
        self._dummy: Final = self.hash(secrets.token_urlsafe(16))

    @property
    def algorithm(self) -> Algorithm:
        """The algorithm used for new hashes."""
        return self._algorithm

    def hash(self, password: str) -> str:
        """Hash a password with the current algorithm and pepper.

        Blocking and CPU-bound.

        Args:
            password: The plaintext password.

        Returns:
            The self-describing stored form.
        """
        prehash = _prehash(self._pepper.key, password)
        algorithm = self._algorithm
        if isinstance(algorithm, BcryptAlgorithm):
            hashed = bcrypt.hashpw(base64.b64encode(prehash), bcrypt.gensalt(rounds=algorithm.cost))
            return f"{_BCRYPT_PREFIX}${self._pepper.key_id}${hashed.decode('ascii')}"
        salt = secrets.token_bytes(_SALT_BYTES)
        derived = _pbkdf2(algorithm, prehash, salt)
        return (
            f"{_PBKDF2_PREFIX}{algorithm.spec}${self._pepper.key_id}${salt.hex()}${derived.hex()}"
        )

    def verify(self, password: str, stored: str) -> bool:
        """Check a password against a stored hash.

        Blocking and CPU-bound. Never raises on a malformed or unsupported
        stored value, or on an unknown pepper key id: those simply fail.

        Args:
            password: The plaintext password to check.
            stored: A value produced by :meth:`hash`, by an earlier
                configuration, or imported in the legacy Emmett format.

        Returns:
            True when the password matches.
        """
        try:
            result = self._verify(password, stored)
        except ValueError:
            # Covers bcrypt rejecting a salt and unencodable (surrogate) passwords.
            result = None
        if result is None:
            # Nothing was computed (no usable hash, e.g. an account without a password):
            # pay for a hash anyway, so the answer takes as long as for a real one.
            with contextlib.suppress(ValueError):
                self._verify(password, self._dummy)
            return False
        return result

    def needs_rehash(self, stored: str) -> bool:
        """Tell whether a stored hash should be replaced after a successful login.

        Args:
            stored: The stored hash.

        Returns:
            True when it uses another algorithm or parameters, a pepper other
            than the current one, the legacy Emmett format, or is unparsable.
        """
        algorithm = self._algorithm
        if isinstance(algorithm, BcryptAlgorithm):
            bcrypt_parts = _split_bcrypt(stored)
            if bcrypt_parts is None:
                return True
            key_id, bcrypt_hash = bcrypt_parts
            cost = int(bcrypt_hash[4:6])
            return key_id != self._pepper.key_id or cost != algorithm.cost
        pbkdf2_parts = _split_pbkdf2(stored)
        if pbkdf2_parts is None:
            return True
        stored_algorithm, key_id, _, _ = pbkdf2_parts
        return key_id != self._pepper.key_id or stored_algorithm != algorithm

    def verify_dummy(self, password: str) -> bool:
        """Spend the time of a real verification, for an unknown account.

        Blocking and CPU-bound. Calling this when the e-mail is unknown keeps
        both failure paths equally slow, so timing does not reveal accounts.

        Args:
            password: The submitted password.

        Returns:
            Always False.
        """
        self.verify(password, self._dummy)
        return False

    def _verify(self, password: str, stored: str) -> bool | None:
        """The check's outcome, or None when no hash could be computed at all."""
        if stored.startswith(_BCRYPT_PREFIX + "$"):
            bcrypt_parts = _split_bcrypt(stored)
            if bcrypt_parts is None:
                return None
            key_id, bcrypt_hash = bcrypt_parts
            key = self._keys.get(key_id)
            if key is None:
                return None
            candidate = base64.b64encode(_prehash(key, password))
            return bcrypt.checkpw(candidate, bcrypt_hash.encode("ascii"))
        if stored.startswith(_PBKDF2_PREFIX):
            pbkdf2_parts = _split_pbkdf2(stored)
            if pbkdf2_parts is None:
                return None
            algorithm, key_id, salt, expected = pbkdf2_parts
            key = self._keys.get(key_id)
            if key is None:
                return None
            return hmac.compare_digest(_pbkdf2(algorithm, _prehash(key, password), salt), expected)
        if not stored.startswith("pbkdf2("):
            return None
        return _verify_legacy(password, stored)


def _check_key_id(key_id: str) -> None:
    if not _KEY_ID_RE.fullmatch(key_id):
        raise ValueError(
            f"invalid pepper key id {key_id!r}: use 1 to 64 letters, digits, '.', '_' or '-'"
        )


def _check_key(key_id: str, key: bytes) -> None:
    if len(key) < _PEPPER_MIN_KEY_BYTES:
        raise ValueError(
            f"pepper {key_id!r} key must be at least {_PEPPER_MIN_KEY_BYTES} bytes long"
        )


def _prehash(key: bytes, password: str) -> bytes:
    # NFC so the same visible password typed on different platforms matches.
    normalized = unicodedata.normalize("NFC", password)
    return hmac.new(key, normalized.encode("utf-8"), hashlib.sha256).digest()


def _pbkdf2(algorithm: Pbkdf2Algorithm, secret: bytes, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac(
        algorithm.hash_name, secret, salt, algorithm.iterations, algorithm.length
    )


def _pbkdf2_problem(algorithm: Pbkdf2Algorithm, min_iterations: int, max_length: int) -> str | None:
    if algorithm.hash_name not in _PBKDF2_HASH_NAMES:
        allowed = ", ".join(sorted(_PBKDF2_HASH_NAMES))
        return f"hash must be one of {allowed}, got {algorithm.hash_name!r}"
    if not min_iterations <= algorithm.iterations <= _PBKDF2_MAX_ITERATIONS:
        return f"iterations must be between {min_iterations} and {_PBKDF2_MAX_ITERATIONS}"
    if not 1 <= algorithm.length <= max_length:
        return f"length must be between 1 and {max_length} bytes"
    return None


def _parse_stored_pbkdf2_spec(spec: str, *, legacy: bool) -> Pbkdf2Algorithm | None:
    match = _PBKDF2_SPEC_RE.fullmatch(spec)
    if match is None:
        return None
    algorithm = Pbkdf2Algorithm(int(match.group(1)), int(match.group(2)), match.group(3))
    if legacy:
        problem = _pbkdf2_problem(algorithm, 1, _LEGACY_MAX_LENGTH)
    else:
        problem = _pbkdf2_problem(algorithm, _PBKDF2_MIN_ITERATIONS, _PBKDF2_MAX_LENGTH)
    return None if problem is not None else algorithm


def _decode_hex(text: str, length: int) -> bytes | None:
    # bytes.fromhex alone would also accept whitespace.
    if len(text) != 2 * length or not _HEX_RE.fullmatch(text):
        return None
    return bytes.fromhex(text)


def _split_bcrypt(stored: str) -> tuple[str, str] | None:
    parts = stored.split("$", 2)
    if len(parts) != 3 or parts[0] != _BCRYPT_PREFIX:
        return None
    _, key_id, bcrypt_hash = parts
    match = _BCRYPT_HASH_RE.fullmatch(bcrypt_hash)
    if match is None or not _KEY_ID_RE.fullmatch(key_id):
        return None
    if not _BCRYPT_MIN_COST <= int(match.group(1)) <= _BCRYPT_MAX_COST:
        return None
    return key_id, bcrypt_hash


def _split_pbkdf2(stored: str) -> tuple[Pbkdf2Algorithm, str, bytes, bytes] | None:
    parts = stored.split("$")
    if len(parts) != 4 or not parts[0].startswith(_PBKDF2_PREFIX):
        return None
    spec, key_id, salt_hex, derived_hex = parts
    algorithm = _parse_stored_pbkdf2_spec(spec.removeprefix(_PBKDF2_PREFIX), legacy=False)
    if algorithm is None or not _KEY_ID_RE.fullmatch(key_id):
        return None
    salt = _decode_hex(salt_hex, _SALT_BYTES)
    derived = _decode_hex(derived_hex, algorithm.length)
    if salt is None or derived is None:
        return None
    return algorithm, key_id, salt, derived


def _verify_legacy(password: str, stored: str) -> bool:
    parts = stored.split("$")
    if len(parts) != 3:
        return False
    spec, salt, derived_hex = parts
    algorithm = _parse_stored_pbkdf2_spec(spec, legacy=True)
    if algorithm is None or not _LEGACY_SALT_RE.fullmatch(salt):
        return False
    expected = _decode_hex(derived_hex, algorithm.length)
    if expected is None:
        return False
    # Emmett hashed the raw password: no pepper, no normalization.
    actual = _pbkdf2(algorithm, password.encode("utf-8"), salt.encode("ascii"))
    return hmac.compare_digest(actual, expected)
