"""Credentials out of everything the daemon prints or stores: one redaction for all of it.

Camera and database URLs carry passwords (``rtsp://admin:pw@cam/``), sometimes in odd places:
a user name holding ``@``, a token as the whole user info (``rtsp://TOKEN@cam``), a password in
the query or the path (``?password=pw``, ``/user=admin_password=pw_channel=1``, as some camera
firmwares want). Every log line, error, check-config line, bench report and stored command line
goes through :func:`redact`, so none of them can show what a URL's owner meant to keep secret.

The rules are deliberately wider than any one URL parser: where parsers disagree on where a
password ends (FFmpeg reads user info up to the *last* ``@``; RFC 3986 stops at the first ``/``),
the redaction masks the larger part. Hiding a little of a host name in a rare URL is the price
of never showing a password. It runs in linear time on any input (no backtracking patterns).
"""

from __future__ import annotations

import re

MASK = "***"

# Query and path parameters whose value is a secret. Matched as whole words before '=', any case.
SECRET_PARAMETERS = (
    "password", "passwd", "pass", "pwd", "user", "username", "login", "token", "access_token",
    "auth", "authorization", "key", "apikey", "api_key", "secret", "sig", "signature",
    "credential", "credentials", "session", "sessionid",
)
_PARAMETER = re.compile(
    r"(?i)(?<![A-Za-z0-9])(" + "|".join(sorted(SECRET_PARAMETERS, key=len, reverse=True))
    + r")=[^&;/#\s]*"
)
_WHITESPACE = re.compile(r"(\s+)")
_SCHEME = "://"


def redact(text: str) -> str:
    """Mask every credential in free text (a log message, an error, a command line).

    Each whitespace-separated word is redacted as a URL when it holds one. A URL's user info
    (everything from ``://`` to the last ``@`` of the word) keeps only the user name before its
    first ``:`` (``rtsp://admin:***@cam``); user info without ``:`` is a token and is masked whole.
    A word without ``://`` shaped like ``user:pw@host`` is masked the same way.

    Args:
        text: anything.

    Returns:
        The text with every credential replaced by ``***``; all else unchanged.

    Example:
        >>> redact("cannot open rtsp://admin:s3cret@10.0.0.5/stream?token=abc")
        'cannot open rtsp://admin:***@10.0.0.5/stream?token=***'
    """
    if "@" not in text and "=" not in text:
        return text  # the common case: nothing that could hold a credential
    return "".join(
        part if index % 2 else _redact_word(part)
        for index, part in enumerate(_WHITESPACE.split(text))
    )


def redact_url(url: str) -> str:
    """Mask the credentials of one URL known to be a URL as a whole, whitespace and all.

    A URL from a config file is redacted with this, so a password with a space in it (which no
    URL may hold, and which the config refuses) is still masked whole in that refusal.
    """
    return _redact_word(url)


def _redact_word(word: str) -> str:
    # Parameters first: a value may hold an '@' that would otherwise look like user info's end.
    if "=" in word:
        word = _PARAMETER.sub(lambda m: m[1] + "=" + MASK, word)
    scheme_end = word.find(_SCHEME)
    start = scheme_end + len(_SCHEME) if scheme_end >= 0 else 0
    at = word.rfind("@", start)
    if at >= 0:
        user_info = word[start:at]
        colon = user_info.find(":")
        if scheme_end >= 0:
            masked = MASK if colon < 0 else user_info[:colon] + ":" + MASK
            word = word[:start] + masked + word[at:]
        elif colon >= 0:  # "user:pw@host" typed without a scheme
            word = word[:colon] + ":" + MASK + word[at:]
    return word
