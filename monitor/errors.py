"""Turning exceptions into the one-line messages the daemon logs and the CLI prints."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of an error's message, preferring a wrapped driver error's own words.

    Args:
        exc: any exception; wrappers with an ``orig`` (SQLAlchemy's) are unwrapped.

    Returns:
        One line of text, never empty.
    """
    # SQLAlchemy's own str() appends SQL and a documentation link; the driver's is shorter.
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__
