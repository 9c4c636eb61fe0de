"""Tests for peppered password hashing, pepper rotation and legacy import."""

from __future__ import annotations

import unicodedata

import pytest

from watchword_server.security.passwords import (
    BcryptAlgorithm,
    PasswordHasher,
    Pbkdf2Algorithm,
    Pepper,
    parse_algorithm,
)

BCRYPT = "bcrypt(4)"
PBKDF2 = "pbkdf2(1000,32,sha256)"
ALGORITHMS = [BCRYPT, PBKDF2]

PEPPER_1 = Pepper("k1", b"first-pepper-key-0123456789abcdef")
PEPPER_2 = Pepper("k2", b"second-pepper-key-0123456789abcde")

LEGACY_VECTOR = "pbkdf2(2000,20,sha512)$0123456789abcdef$7801fac685382031f97f8da983134b333dfcc89f"


def make(algorithm: str, pepper: Pepper = PEPPER_1) -> PasswordHasher:
    return PasswordHasher(algorithm, pepper)


def rotated(algorithm: str) -> PasswordHasher:
    """A hasher whose current pepper is k2, with k1 retired."""
    return PasswordHasher(algorithm, PEPPER_2, {PEPPER_1.key_id: PEPPER_1.key})


# Round trip and formats


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_round_trip(algorithm: str) -> None:
    hasher = make(algorithm)
    stored = hasher.hash("correct horse battery staple")
    assert hasher.verify("correct horse battery staple", stored)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_wrong_password(algorithm: str) -> None:
    hasher = make(algorithm)
    stored = hasher.hash("correct horse battery staple")
    assert not hasher.verify("correct horse battery stapler", stored)
    assert not hasher.verify("", stored)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_hashes_are_salted(algorithm: str) -> None:
    hasher = make(algorithm)
    assert hasher.hash("same password") != hasher.hash("same password")


def test_bcrypt_format() -> None:
    stored = make(BCRYPT).hash("pw")
    prefix, key_id, rest = stored.split("$", 2)
    assert (prefix, key_id) == ("hmac-bcrypt", "k1")
    assert rest.startswith("$2b$04$")


def test_pbkdf2_format() -> None:
    stored = make(PBKDF2).hash("pw")
    prefix, key_id, salt, derived = stored.split("$")
    assert (prefix, key_id) == ("hmac-pbkdf2(1000,32,sha256)", "k1")
    assert len(salt) == 32
    assert len(derived) == 64
    int(salt, 16)
    int(derived, 16)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_pepper_is_applied(algorithm: str) -> None:
    stored = make(algorithm).hash("pw")
    other = PasswordHasher(algorithm, Pepper("k1", b"a-different-key-with-same-id!!"))
    assert not other.verify("pw", stored)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_long_password_is_not_truncated(algorithm: str) -> None:
    hasher = make(algorithm)
    first = "a" * 99 + "b"
    second = "a" * 99 + "c"
    assert len(first.encode("utf-8")) == 100
    stored = hasher.hash(first)
    assert hasher.verify(first, stored)
    assert not hasher.verify(second, stored)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_unicode_nfc_normalization(algorithm: str) -> None:
    hasher = make(algorithm)
    composed = "caf\u00e9"
    decomposed = "cafe\u0301"
    assert composed != decomposed
    assert unicodedata.normalize("NFC", decomposed) == composed
    assert hasher.verify(decomposed, hasher.hash(composed))
    assert hasher.verify(composed, hasher.hash(decomposed))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_unencodable_password_does_not_raise(algorithm: str) -> None:
    hasher = make(algorithm)
    assert not hasher.verify("\ud800", hasher.hash("pw"))


# Legacy Emmett import


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_legacy_vector(algorithm: str) -> None:
    hasher = make(algorithm)
    assert hasher.verify("pocketuniverse", LEGACY_VECTOR)
    assert not hasher.verify("pocketuniverse2", LEGACY_VECTOR)


@pytest.mark.parametrize(
    "stored",
    [
        # Iterations beyond the cap must be refused without running them.
        "pbkdf2(999999999,20,sha512)$0123456789abcdef$7801fac685382031f97f8da983134b333dfcc89f",
        "pbkdf2(2000,20,md5)$0123456789abcdef$7801fac685382031f97f8da983134b333dfcc89f",
        "pbkdf2(2000,20,sha512)$0123456789abcdef$7801fac685382031f97f8da983134b333dfcc8",
        "pbkdf2(2000,20,sha512)$0123456789abcdef$7801fac685382031f97f8da983134b333dfcc8 f",
        "pbkdf2(2000,20,sha512)$$7801fac685382031f97f8da983134b333dfcc89f",
        "pbkdf2(2000,20,sha512)$0123456789abcdef$7801fac685382031f97f8da983134b333dfcc89f$x",
        "pbkdf2(0,20,sha512)$0123456789abcdef$7801fac685382031f97f8da983134b333dfcc89f",
    ],
)
def test_malformed_legacy_is_rejected(stored: str) -> None:
    assert not make(BCRYPT).verify("pocketuniverse", stored)


# needs_rehash


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_needs_rehash_same_algorithm(algorithm: str) -> None:
    hasher = make(algorithm)
    assert not hasher.needs_rehash(hasher.hash("pw"))


def test_needs_rehash_other_bcrypt_cost() -> None:
    stored = make("bcrypt(5)").hash("pw")
    assert make(BCRYPT).needs_rehash(stored)
    assert make(BCRYPT).verify("pw", stored)


@pytest.mark.parametrize(
    "other", ["pbkdf2(2000,32,sha256)", "pbkdf2(1000,64,sha256)", "pbkdf2(1000,32,sha512)"]
)
def test_needs_rehash_other_pbkdf2_params(other: str) -> None:
    stored = make(other).hash("pw")
    assert make(PBKDF2).needs_rehash(stored)
    assert make(PBKDF2).verify("pw", stored)


@pytest.mark.parametrize(("current", "previous"), [(BCRYPT, PBKDF2), (PBKDF2, BCRYPT)])
def test_needs_rehash_other_algorithm(current: str, previous: str) -> None:
    stored = make(previous).hash("pw")
    hasher = make(current)
    assert hasher.needs_rehash(stored)
    assert hasher.verify("pw", stored)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_needs_rehash_legacy(algorithm: str) -> None:
    assert make(algorithm).needs_rehash(LEGACY_VECTOR)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_needs_rehash_retired_key_id(algorithm: str) -> None:
    stored = make(algorithm, PEPPER_1).hash("pw")
    hasher = rotated(algorithm)
    assert hasher.needs_rehash(stored)
    assert not hasher.needs_rehash(hasher.hash("pw"))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("stored", ["", "pending", "$$$", "hmac-bcrypt$k1$notbcrypt"])
def test_needs_rehash_malformed(algorithm: str, stored: str) -> None:
    assert make(algorithm).needs_rehash(stored)


# Pepper rotation


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_verify_with_retired_pepper(algorithm: str) -> None:
    stored = make(algorithm, PEPPER_1).hash("pw")
    hasher = rotated(algorithm)
    assert hasher.verify("pw", stored)
    assert not hasher.verify("wrong", stored)
    assert hasher.hash("pw").split("$")[1] == "k2"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_unknown_key_id(algorithm: str) -> None:
    stored = make(algorithm, PEPPER_2).hash("pw")
    assert not make(algorithm, PEPPER_1).verify("pw", stored)


def test_retired_pepper_cannot_reuse_current_id_with_other_key() -> None:
    with pytest.raises(ValueError, match="reuses"):
        PasswordHasher(BCRYPT, PEPPER_1, {"k1": b"another-key-0123456789"})


@pytest.mark.parametrize(
    "retired",
    [{"bad id": b"0123456789abcdef"}, {"": b"0123456789abcdef"}, {"k0": b"short"}],
)
def test_invalid_retired_peppers(retired: dict[str, bytes]) -> None:
    with pytest.raises(ValueError, match="pepper"):
        PasswordHasher(BCRYPT, PEPPER_1, retired)


@pytest.mark.parametrize(
    ("key_id", "key"),
    [("", b"0123456789abcdef"), ("a$b", b"0123456789abcdef"), ("k1", b""), ("k1", b"short")],
)
def test_invalid_pepper(key_id: str, key: bytes) -> None:
    with pytest.raises(ValueError, match="pepper"):
        Pepper(key_id, key)


def test_pepper_repr_hides_key() -> None:
    assert "first-pepper-key" not in repr(PEPPER_1)


# Malformed stored values


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(
    "stored",
    [
        "",
        "pending",
        "$$$",
        "hmac-bcrypt$k1$notbcrypt",
        "hmac-bcrypt$k1$",
        "hmac-bcrypt",
        "hmac-bcrypt$k1$$2b$99$" + "a" * 53,
        "hmac-bcrypt$k1$$2b$04$" + "!" * 53,
        "hmac-pbkdf2(1000,32,sha256)$k1$00$00",
        "hmac-pbkdf2(1000,32,sha256)$k1$" + "0" * 32 + "$" + "zz" * 32,
        "hmac-pbkdf2(1000,32,md5)$k1$" + "0" * 32 + "$" + "00" * 32,
        "hmac-pbkdf2(1,32,sha256)$k1$" + "0" * 32 + "$" + "00" * 32,
        "hmac-pbkdf2(99999999,32,sha256)$k1$" + "0" * 32 + "$" + "00" * 32,
        "hmac-pbkdf2$k1$x$y",
        "\x00",
        "pbkdf2(",
    ],
)
def test_malformed_stored_is_false(algorithm: str, stored: str) -> None:
    assert make(algorithm).verify("pw", stored) is False


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_tampered_hash_is_false(algorithm: str) -> None:
    hasher = make(algorithm)
    stored = hasher.hash("pw")
    last = "0" if stored[-1] != "0" else "1"
    assert not hasher.verify("pw", stored[:-1] + last)


# verify_dummy


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_verify_dummy_is_false(algorithm: str) -> None:
    hasher = make(algorithm)
    assert hasher.verify_dummy("pw") is False
    assert hasher.verify_dummy("") is False


# Algorithm settings


def test_parse_algorithm() -> None:
    assert parse_algorithm("bcrypt(12)") == BcryptAlgorithm(12)
    assert parse_algorithm("pbkdf2(600000,32,sha256)") == Pbkdf2Algorithm(600000, 32, "sha256")
    assert parse_algorithm(" pbkdf2(600000, 32, sha512) ").spec == "pbkdf2(600000,32,sha512)"
    assert parse_algorithm("bcrypt(4)").spec == "bcrypt(4)"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "bcrypt",
        "bcrypt()",
        "bcrypt(3)",
        "bcrypt(32)",
        "bcrypt(-1)",
        "bcrypt(12",
        "argon2(3)",
        "pbkdf2(600000,32)",
        "pbkdf2(600000,32,md5)",
        "pbkdf2(600000,32,SHA256)",
        "pbkdf2(999,32,sha256)",
        "pbkdf2(10000001,32,sha256)",
        "pbkdf2(600000,8,sha256)",
        "pbkdf2(600000,4096,sha256)",
        "pbkdf2(600000,32,sha256)x",
    ],
)
def test_invalid_algorithm_raises(text: str) -> None:
    with pytest.raises(ValueError, match="bcrypt|pbkdf2|password algorithm"):
        PasswordHasher(text, PEPPER_1)
