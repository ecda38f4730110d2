"""A password validator for passwords that are long but guessable: few distinct characters,
a short pattern repeated, or a keyboard-free run such as ``abcdefghijkl`` (issue 15).

Django's ``CommonPasswordValidator`` knows 20,000 leaked passwords, but not every repetition:
``aaaaaaaaaaaa`` passes it and the 12-character minimum. NIST SP 800-63B, section 5.1.1.2,
asks verifiers to refuse "repetitive or sequential characters (e.g. 'aaaaaa', '1234abcd')".
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError


class LowVarietyPasswordValidator:
    """Refuse passwords with under ``min_distinct`` different characters, a repeated
    pattern (``abcabcabcabc``) or a sequential run (``123456789012``, ``lkjihgfedcba``)."""

    def __init__(self, min_distinct: int = 5) -> None:
        self.min_distinct = min_distinct

    def validate(self, password: str, user: Any = None) -> None:
        if len(set(password.lower())) < self.min_distinct:
            raise ValidationError(
                "This password uses too few different characters (at least %(n)d needed).",
                code="password_low_variety",
                params={"n": self.min_distinct},
            )
        if _repeated(password):
            raise ValidationError(
                "This password is a short pattern repeated; choose something less predictable.",
                code="password_repeated",
            )
        if _sequential(password):
            raise ValidationError(
                "This password is a run of consecutive characters; choose something less "
                "predictable.",
                code="password_sequential",
            )

    def get_help_text(self) -> str:
        return (
            f"Your password must use at least {self.min_distinct} different characters and "
            "cannot be a repeated pattern or a run like 'abcdef' or '123456'."
        )


def _repeated(password: str) -> bool:
    """``abcabcabcabc``: the password is a shorter unit repeated (half its length at most)."""
    n = len(password)
    return any(n % k == 0 and password[:k] * (n // k) == password for k in range(1, n // 2 + 1))


def _sequential(password: str) -> bool:
    """Most neighbouring characters are one apart (``abcdefghijkl``, ``987654321098``)."""
    if len(password) < 3:
        return False
    steps = [ord(b) - ord(a) for a, b in zip(password.lower(), password.lower()[1:], strict=False)]
    ones = sum(1 for s in steps if abs(s) == 1 or s == -9)  # "...7890..." wraps around
    return ones >= 0.75 * len(steps)
