"""What a new password must be: of the configured length, not the account's own address
or name, and (unless switched off) not one of the common and breached passwords that
guessers try first (NIST SP 800-63B, 5.1.1.2). Each failure is a field violation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from watchword_server.config import Settings
from watchword_server.domain.common.validation import Violations
from watchword_server.security.common_passwords import fold, is_common

__all__ = ["PasswordPolicy"]


def _compact(text: str) -> str:
    return "".join(fold(text).split())


@dataclass(frozen=True)
class PasswordPolicy:
    """The rules for new passwords, from the settings."""

    min_length: int
    max_length: int
    refuse_common: bool

    @classmethod
    def of(cls, settings: Settings) -> PasswordPolicy:
        """The policy ``settings`` configure."""
        return cls(
            settings.password_min_length,
            settings.password_max_length,
            settings.password_refuse_common,
        )

    def check(
        self,
        problems: Violations,
        field: str,
        password: str,
        *,
        email: str = "",
        names: Sequence[str] = (),
    ) -> None:
        """Add ``field``'s violations for ``password``, chosen by the account with ``email``
        and ``names`` (first and last), to ``problems``."""
        before = len(problems.items)
        problems.password(field, password, min_length=self.min_length, max_length=self.max_length)
        if len(problems.items) > before:
            return
        if self.is_own(password, email=email, names=names):
            self.refuse_own(problems, field)
        elif self.refuse_common and is_common(password):
            problems.add(
                field,
                f"{field} is one of the most common passwords, the first a guesser tries: "
                "choose another",
            )

    @staticmethod
    def is_own(password: str, *, email: str, names: Sequence[str]) -> bool:
        """Whether ``password`` is the account's address (or its local part) or name, in
        any case and spacing."""
        names = [name for name in names if name.strip()]
        own = [email, email.partition("@")[0], *names, " ".join(names)]
        return _compact(password) in {_compact(value) for value in own if value.strip()}

    @staticmethod
    def refuse_own(problems: Violations, field: str) -> None:
        """Add the violation of a password that ``is_own``."""
        problems.add(field, f"{field} must not be the e-mail address or the name")
