"""One boto3 S3 client, every call retried, counted and explained.

Transient failures (503 SlowDown and other throttling, 5xx, timeouts,
connection resets) are retried here with tenacity: exponential backoff with
full jitter, bounded in attempts and total time, and counted for the report.
botocore's own retries are switched off so that the count is honest.

The backoff's first ceiling is `S3Options.backoff_s`, 0.25 s unless the
environment sets `RUN_EXPORTS_INDEX_S3_BACKOFF` (seconds; read here and nowhere
else). Tests that inject hundreds of faults set it to a few milliseconds so
they exercise every retry without sleeping for real seconds.

Everything else fails fast as one line naming the operation, the bucket or
object and what to check: bad credentials, denied access, a missing bucket,
an endpoint that never answered. Credentials never appear in a message.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import botocore
import botocore.exceptions as bex
import botocore.session
import botocore.utils
from botocore.config import Config
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from indexer.errors import RunError, UsageError
from indexer.redact import redact

log = logging.getLogger(__name__)
T = TypeVar("T")

ADDRESSING_STYLES = ("path", "virtual")
BACKOFF_ENV = "RUN_EXPORTS_INDEX_S3_BACKOFF"
DEFAULT_BACKOFF_S = 0.25

# Codes (or bare HTTP statuses, as HEAD answers carry no body) worth retrying.
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequests",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "429",
    }
)
# Failures no retry can cure, with what the user should check.
AUTH_HINTS = {
    "InvalidAccessKeyId": "the access key is unknown to the store; check the credentials "
    "(AWS_ACCESS_KEY_ID, AWS_PROFILE / --profile) and --endpoint-url",
    "SignatureDoesNotMatch": "the secret key does not match the access key; check "
    "AWS_SECRET_ACCESS_KEY or the profile",
    "AccessDenied": "the credentials lack permission for this operation; check the "
    "bucket policy / IAM role (publishing needs write access, --dry-run only read and list)",
    "403": "access denied; check the credentials and their permissions",
    "ExpiredToken": "the session token has expired; refresh the credentials",
    "InvalidToken": "the session token is invalid; refresh the credentials",
    "AllAccessDisabled": "all access to this bucket is disabled",
    "AuthorizationHeaderMalformed": "the request was signed for the wrong region; "
    "check --region / AWS_REGION",
    "PermanentRedirect": "the bucket lives in another region; check --region / AWS_REGION",
}
# A transfer that broke off: reset, timed out, or a body shorter than its
# Content-Length (botocore raises IncompleteReadError for that, which is not an
# HTTPClientError). Always worth another attempt (or, for a stream, a resume).
BROKEN_TRANSFER: tuple[type[BaseException], ...] = (
    bex.HTTPClientError,
    bex.IncompleteReadError,
    ConnectionError,
    TimeoutError,
)
MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
WRITES = frozenset({"PutObject", "DeleteObject"})
PRECONDITION = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


@dataclass(frozen=True)
class S3Options:
    """How to reach the store; None leaves the choice to boto3's usual sources."""

    endpoint_url: str | None = None  # else AWS_ENDPOINT_URL(_S3), else AWS
    region: str | None = None  # else AWS_REGION, AWS_DEFAULT_REGION, the profile
    addressing_style: str | None = None  # "path" | "virtual"; None: botocore decides
    profile: str | None = None  # else AWS_PROFILE, else the default chain
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    max_attempts: int = 6  # per call, the first included
    max_retry_s: float = 120.0  # per call, backoff included
    # first backoff ceiling; doubles each attempt (full jitter)
    backoff_s: float = field(default_factory=lambda: backoff_from_env())
    max_connections: int = 32  # the client's connection pool (see `pool_size`)
    # Unsigned (anonymous) requests for a public bucket: reads only, never writes.
    unsigned: bool = False


def pool_size(jobs: int) -> int:
    """Connections for a run reading `jobs` artifacts at once.

    Each reader holds at most one GET open; listings of every subdir, cache
    fetches and uploads run beside them. A pool smaller than the threads
    using it makes urllib3 drop and reopen connections.
    """
    return max(S3Options.max_connections, jobs + 16)


def backoff_from_env() -> float:
    """The first backoff ceiling: `RUN_EXPORTS_INDEX_S3_BACKOFF` seconds, else 0.25."""
    text = os.environ.get(BACKOFF_ENV, "").strip()
    if not text:
        return DEFAULT_BACKOFF_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 60:
        raise UsageError(f"{BACKOFF_ENV} must be a number of seconds from 0 to 60, not {text!r}")
    return value


class ObjectMissing(LookupError):
    """The object (not the bucket) does not exist."""


class PreconditionFailed(Exception):
    """A conditional request's condition did not hold (412/409)."""


class S3Api:
    """A boto3 client wrapped so that every call is retried, counted and explained."""

    def __init__(self, bucket: str, options: S3Options) -> None:
        self.bucket = bucket
        self.options = options
        self.retries = 0
        self._lock = threading.Lock()
        self._reached = False  # has the endpoint ever answered?
        self.client = make_client(options)
        # for messages: the endpoint without the credentials a URL may carry
        self.endpoint_url = redact(self.client.meta.endpoint_url)
        log.debug("S3 client for s3://%s at %s", bucket, self.endpoint_url)

    def call(self, operation: str, where: str = "", **params: Any) -> dict[str, Any]:
        """Run the S3 `operation` (e.g. "ListObjectsV2") on this bucket, with retries.

        `where` names the object for messages (default: the bucket). Raises
        `ObjectMissing`, `PreconditionFailed` or `RunError`. A write on an
        unsigned client is refused here, before any request: a bucket that
        accepted anonymous writes would be a bucket anyone can rewrite.
        """
        if self.options.unsigned and operation in WRITES:
            raise RunError(
                f"S3 {operation} on {where or f's3://{self.bucket}'} refused: reads are "
                "unsigned (--unsigned / input 'unsigned') and writes are never attempted "
                "unsigned; publishing needs credentials"
            )
        method = getattr(self.client, _snake(operation))
        return self.retrying(lambda: method(Bucket=self.bucket, **params), operation, where)

    def retrying(self, fn: Callable[[], T], operation: str, where: str = "") -> T:
        """Run `fn` (one S3 request and reading its answer) under the retry policy."""
        where = where or f"s3://{self.bucket}"
        opts = self.options
        retryer = Retrying(
            stop=stop_after_attempt(opts.max_attempts) | stop_after_delay(opts.max_retry_s),
            wait=wait_random_exponential(multiplier=opts.backoff_s, max=opts.max_retry_s / 4),
            retry=retry_if_exception(self._transient),
            before_sleep=lambda state: self._count(state, operation, where),
            reraise=True,
        )
        try:
            result = retryer(fn)
        except bex.ClientError as exc:
            self._reached = True
            raise self._explain(exc, operation, where) from None
        except (bex.BotoCoreError, OSError) as exc:
            raise self._explain_transport(exc, operation, where) from None
        self._reached = True
        return result

    # -- classification -------------------------------------------------------
    def _transient(self, exc: BaseException) -> bool:
        if isinstance(exc, bex.ClientError):
            self._reached = True
            code, status = error_code(exc)
            return code in TRANSIENT_CODES or status >= 500 or status == 429
        if isinstance(exc, bex.EndpointConnectionError):
            # Refused or unresolvable: transient only for an endpoint that
            # answered before; a wrong --endpoint-url must fail at once.
            return self._reached
        return isinstance(exc, BROKEN_TRANSFER)

    def count_retry(self) -> None:
        """Count one retry (also for resumes that happen outside `retrying`)."""
        with self._lock:
            self.retries += 1

    def _count(self, state: RetryCallState, operation: str, where: str) -> None:
        self.count_retry()
        exc = state.outcome.exception() if state.outcome else None
        log.info(
            "S3 %s on %s: %s; retrying (attempt %d)",
            operation,
            where,
            describe(exc),
            state.attempt_number + 1,
        )

    def _explain(self, exc: bex.ClientError, operation: str, where: str) -> Exception:
        code, status = error_code(exc)
        if code in MISSING:
            return ObjectMissing(where)
        if code in PRECONDITION:
            return PreconditionFailed(where)
        if code == "NoSuchBucket":
            return RunError(
                f"S3 {operation}: bucket {self.bucket!r} does not exist at {self.endpoint_url}; "
                "check the bucket name, --endpoint-url and --region"
            )
        if code in AUTH_HINTS and self.options.unsigned:
            return RunError(
                f"S3 {operation} on {where} refused ({code}) to an unsigned request: the "
                "bucket policy must allow anonymous s3:ListBucket and s3:GetObject on the "
                "channel prefix (docs/s3.md), or give credentials"
            )
        if code in AUTH_HINTS:
            return RunError(f"S3 {operation} on {where} refused ({code}): {AUTH_HINTS[code]}")
        if code in TRANSIENT_CODES or status >= 500:
            return RunError(
                f"S3 {operation} on {where} kept failing ({code}, HTTP {status}) after "
                f"{self.options.max_attempts} attempts; the store is overloaded or down, "
                "try again later"
            )
        return RunError(f"S3 {operation} on {where} failed: {describe(exc)}")

    def _explain_transport(self, exc: BaseException, operation: str, where: str) -> Exception:
        if isinstance(exc, bex.NoCredentialsError):
            return RunError(
                f"S3 {operation} on {where}: no AWS credentials found; set AWS_ACCESS_KEY_ID "
                "and AWS_SECRET_ACCESS_KEY, AWS_PROFILE / --profile, or a web identity"
            )
        if isinstance(exc, bex.EndpointConnectionError) and not self._reached:
            return RunError(
                f"S3 {operation} on {where}: cannot reach the endpoint {self.endpoint_url} "
                f"({describe(exc)}); check --endpoint-url / AWS_ENDPOINT_URL and the network"
            )
        return RunError(
            f"S3 {operation} on {where} failed at {self.endpoint_url}: {describe(exc)}"
            + (f" (after {self.options.max_attempts} attempts)" if self._transient(exc) else "")
        )


def make_client(options: S3Options) -> Any:
    """An S3 client (botocore's, as boto3 builds it) from the options, the AWS_* variables
    and the default chain."""
    quiet_libraries()
    if options.addressing_style not in (None, *ADDRESSING_STYLES):
        raise UsageError(
            f"--addressing-style must be path or virtual, not {options.addressing_style!r}"
        )
    region = options.region or os.environ.get("AWS_REGION") or None
    # botocore's session makes the very client boto3's would (boto3.Session.client
    # is a call to it); importing boto3 itself would add s3transfer and
    # multiprocessing, ~50 ms of CPU on every run, for methods we never call.
    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=parse_timestamp
    )
    if options.profile is not None:
        core.set_config_variable("profile", options.profile)
    config = Config(
        s3={"addressing_style": options.addressing_style or "auto"},
        retries={"total_max_attempts": 1, "mode": "standard"},  # tenacity retries, counted
        connect_timeout=options.connect_timeout_s,
        read_timeout=options.read_timeout_s,
        max_pool_connections=options.max_connections,
        tcp_keepalive=True,  # a long cold run keeps idle pooled connections alive
        # Our own code builds every request's parameters; validating them again
        # cost ~5% of a range GET's CPU (measured with the benchmark in RESULTS.md).
        parameter_validation=False,
        # S3-compatible stores (SeaweedFS, R2, older MinIO) reject or ignore the
        # newer default checksum headers; only send them where S3 requires them.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    if options.unsigned:  # a public bucket read anonymously: no credentials are looked up
        config = config.merge(Config(signature_version=botocore.UNSIGNED))
    try:
        client = core.create_client(
            "s3", region_name=region, endpoint_url=options.endpoint_url or None, config=config
        )
    except bex.ProfileNotFound as exc:
        raise UsageError(
            f"AWS profile not found: {exc.kwargs.get('profile')}; check --profile / AWS_PROFILE"
        ) from None
    except ValueError as exc:  # a malformed endpoint URL
        raise UsageError(redact(f"invalid S3 endpoint {options.endpoint_url!r}: {exc}")) from None
    return client


def has_credentials(profile: str | None = None) -> bool:
    """Does boto3's default chain (variables, profile, web identity, ...) find credentials?

    The action asks before a preview: a fork's pull request gets no secrets,
    and a public channel can then still be previewed with unsigned reads.
    A profile that does not exist finds none.
    """
    quiet_libraries()
    try:
        session = botocore.session.get_session()  # the chain the client uses (not boto3's)
        if profile:
            session.set_config_variable("profile", profile)
        return session.get_credentials() is not None
    except bex.BotoCoreError:
        return False


def parse_timestamp(value: str) -> datetime:
    """A timestamp in an S3 answer; ISO 8601 and HTTP dates fast.

    botocore's default parser goes through dateutil at about 40 µs a value:
    half the time of listing 100,000 objects (ISO 8601 LastModified), and a
    tenth of a range GET's CPU (the Last-Modified header, an HTTP date). Other
    forms (epoch seconds) still go to botocore's parser.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return botocore.utils.parse_timestamp(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def quiet_libraries() -> None:
    """Keep botocore's debug output (signed headers, access key id) out of --verbose logs."""
    for name in ("botocore", "boto3", "s3transfer", "urllib3"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def error_code(exc: bex.ClientError) -> tuple[str, int]:
    """The S3 error code (or HTTP status as text) and the HTTP status."""
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    code = str(exc.response.get("Error", {}).get("Code") or status)
    return code, status


def describe(exc: BaseException | None) -> str:
    """A short reason without botocore's boilerplate (and never credentials)."""
    if exc is None:
        return "unknown error"
    if isinstance(exc, bex.ClientError):
        code, status = error_code(exc)
        message = exc.response.get("Error", {}).get("Message") or ""
        return redact(f"{code} (HTTP {status})" + (f": {message}" if message else ""))
    return redact(f"{type(exc).__name__}: {exc}")  # botocore repeats the URL it tried


def _snake(operation: str) -> str:
    return {
        "ListObjectsV2": "list_objects_v2",
        "GetObject": "get_object",
        "PutObject": "put_object",
        "HeadObject": "head_object",
        "DeleteObject": "delete_object",
    }[operation]
