"""Credentials out of everything we print, log or write: one function, used everywhere.

An endpoint URL may carry a password (`http://user:pass@host`) or a
presigned query (`?X-Amz-Signature=...`), and botocore repeats the URL in its
exceptions. Every line we show (log records, error lines, the report, the
Markdown summary, the action's echoed command line, annotations and outputs)
goes through `redact`, which

- replaces the userinfo of any `scheme://user:pass@host` with `***`,
- replaces the value of any query parameter whose name looks like a
  credential (`X-Amz-Signature`, `X-Amz-Credential`, `X-Amz-Security-Token`,
  `Signature`, `AWSAccessKeyId`, `token`, `password`, `api_key`, ...) with `***`,
- and replaces, wherever they appear, the secrets `register_url` took from
  the URLs given on the command line (a message may show a password decoded
  or cut out of its URL, where no pattern would find it).
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"
MIN_SECRET = 4  # shorter registered values are left to the patterns (they would mask words)

# scheme://userinfo@ : the userinfo ends at the last "@" before the path, query or fragment
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#\"'<>`]*@")
# name=value after "?", "&" or ";" (a query string, in a URL or quoted alone)
_PARAM = re.compile(r"(?<=[?&;])([A-Za-z0-9_.\-]+)=([^&;\s#\"'<>`]*)")
_SENSITIVE = re.compile(
    r"(?i)(signature|credential|token|secret|passw|pwd|auth|key|session|^sig$|^x-amz-)"
)
_SAFE_AMZ = frozenset({"x-amz-date", "x-amz-expires", "x-amz-algorithm", "x-amz-signedheaders"})

_lock = threading.Lock()
_secrets: set[str] = set()


def sensitive_param(name: str) -> bool:
    """Whether a query parameter of this name carries a credential or a signature."""
    return name.lower() not in _SAFE_AMZ and bool(_SENSITIVE.search(name))


def redact(text: object) -> str:
    """`text` with every credential we can recognise replaced by `***`."""
    out = str(text)
    with _lock:  # first: a pattern could cut a known secret so that it no longer matches
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in out:
            out = out.replace(secret, MASK)
    if "@" in out:
        out = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", out)
    if "=" in out:
        out = _PARAM.sub(
            lambda m: f"{m.group(1)}={MASK}" if sensitive_param(m.group(1)) else m.group(0), out
        )
    return out


def secrets_of(url: str) -> list[str]:
    """The credentials in a URL: its userinfo (whole, password alone, decoded too)
    and the values of its credential-like query parameters."""
    found: list[str] = []
    rest = url.split("://", 1)[1] if "://" in url else ""
    rest = re.split(r"\s", rest, maxsplit=1)[0]
    # The naive splits: a "/", ":", "?", "#" or "@" in the password must not hide it.
    # Up to the last "@" (a password with "?" or "#" in it), and up to the last "@"
    # before the query or fragment (a URL whose query holds an "@").
    for head in (rest, re.split(r"[?#]", rest, maxsplit=1)[0]):
        if "@" in head:
            userinfo = head.rpartition("@")[0]
            found += [userinfo, userinfo.partition(":")[2]]
    try:
        parts = urlsplit(url)
        found += [parts.password or "", (parts.username or "") if parts.password is None else ""]
        found += [value for name, value in parse_qsl(parts.query) if sensitive_param(name)]
    except ValueError:
        pass
    found += [unquote(value) for value in found]
    return sorted({value for value in found if len(value) >= MIN_SECRET})


def register_url(url: str | None) -> list[str]:
    """Remember the credentials of a URL we were given, so that `redact` hides
    them wherever they show up later. Returns them (the action masks them too)."""
    if not url:
        return []
    found = secrets_of(url)
    with _lock:
        _secrets.update(found)
    return found


def forget() -> None:
    """Drop the registered secrets (each command-line run starts afresh)."""
    with _lock:
        _secrets.clear()


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the message (and its arguments) of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True
