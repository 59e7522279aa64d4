"""AWS Signature Version 4 for one kind of request: an S3 GET without a body.

Why our own: botocore's signer runs per request inside the client's event
machinery (request dicts, hooks, header objects, debug logging of the
canonical request) and costs a good share of the ~0.8 ms of CPU that each
range GET spent in boto3. A GET of an object needs only a fixed handful of
headers signed, so the whole algorithm fits here, and tests check it against
botocore's `S3SigV4Auth` signature for signature on the same input, and
against a store that enforces credentials.

What is signed: `host`, `x-amz-content-sha256` (the hash of the empty body),
`x-amz-date` and, with temporary credentials, `x-amz-security-token`. Other
headers the caller adds afterwards (`Range`, `If-Match`) travel unsigned,
which SigV4 allows. Nothing here logs: the inputs include the secret key.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from functools import lru_cache
from typing import NamedTuple

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
SERVICE = "s3"


class Secret(NamedTuple):
    """One set of credentials, as botocore's `get_frozen_credentials()` gives them."""

    access_key: str
    secret_key: str
    token: str | None


def amz_date(now: float | None = None) -> str:
    """The `X-Amz-Date` form of a UTC time: `20261124T080200Z`."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))


@lru_cache(maxsize=16)
def signing_key(secret_key: str, day: str, region: str, service: str = SERVICE) -> bytes:
    """The day's derived key (four HMACs); cached, as it changes once a day per region."""
    key = hmac.digest(f"AWS4{secret_key}".encode(), day.encode(), "sha256")
    for part in (region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def host_header(scheme: str, hostname: str, port: int | None) -> str:
    """The Host value botocore would sign: the port only when not the scheme's default."""
    host = f"[{hostname}]" if ":" in hostname else hostname  # IPv6 literal
    if port is not None and port != {"http": 80, "https": 443}.get(scheme):
        host = f"{host}:{port}"
    return host


def sign_get(host: str, path: str, region: str, secret: Secret, when: str) -> dict[str, str]:
    """The headers that authenticate `GET path` on `host` at `when` (an `amz_date`).

    `path` is exactly what goes on the request line (already percent-encoded:
    S3 signs the path as sent, without normalising it again); `host` is the
    Host header's value (`host_header`). There is no query string.
    """
    headers = {
        "host": host,
        "x-amz-content-sha256": EMPTY_SHA256,
        "x-amz-date": when,
    }
    if secret.token:
        headers["x-amz-security-token"] = secret.token
    names = sorted(headers)
    signed = ";".join(names)
    canonical = "\n".join(
        [
            "GET",
            path,
            "",  # no query string
            *(f"{name}:{' '.join(headers[name].split())}" for name in names),
            "",
            signed,
            EMPTY_SHA256,
        ]
    )
    day = when[:8]
    scope = f"{day}/{region}/{SERVICE}/aws4_request"
    to_sign = "\n".join([ALGORITHM, when, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signature = hmac.new(
        signing_key(secret.secret_key, day, region), to_sign.encode(), "sha256"
    ).hexdigest()
    headers["authorization"] = (
        f"{ALGORITHM} Credential={secret.access_key}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return headers  # `host` included: sent as signed, not recomputed by the HTTP client
