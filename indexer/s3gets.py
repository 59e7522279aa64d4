"""GETs of one object (whole, or a byte range), without boto3's per-request machinery.

Why: a cold run makes one range GET per `.conda` and one streamed GET per
`.tar.bz2`, and through `client.get_object` each cost ~0.8 ms of CPU on
botocore's side alone (parameter validation, endpoint rules, event hooks,
user-agent building, signing, response parsing with dateutil): more than
everything else a read does. On two cores that bounded a cold run.

`SignedGets` keeps what matters and drops the rest:

- the URL and signing region come from the boto3 client itself: the run's
  first artifact GET goes through it and is watched (`LazyGets`), so
  botocore's endpoint rules decide path or virtual-host style, the region
  and any cached region redirect; later keys are appended to that URL the
  way botocore encodes them;
- each request is signed with SigV4 (`indexer.sigv4`) using the client's own
  credentials object, so session tokens and refreshable credentials (web
  identity, SSO, assumed roles) behave exactly as for the client;
- it is sent through the client's own HTTP session's connection pool (same
  TLS verification, CA bundle, proxies, timeouts), and transport failures
  become the botocore exceptions `S3Api.retrying` classifies;
- an error answer becomes a `botocore.exceptions.ClientError` shaped like the
  client's, so retries, conflicts, missing objects and the one-line
  explanations stay those of every other S3 call.

`ClientGets` is the same interface over `client.get_object`, kept when the
client's request is one `SignedGets` cannot reproduce (not SigV4, S3
Express, no credentials).
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import botocore.exceptions as bex
import urllib3.exceptions as ue
from botocore.awsrequest import AWSPreparedRequest
from botocore.httpsession import mask_proxy_url
from urllib3.util import Retry

from indexer.redact import redact
from indexer.sigv4 import ALGORITHM, Secret, amz_date, host_header, sign_get

log = logging.getLogger(__name__)
MAX_ERROR_BODY = 64 * 1024
_ERROR_FIELD = re.compile(rb"<(Code|Message)>([^<]*)</\1>")


class Body(Protocol):
    """A response body: `read(n)` (all with -1), `close()`."""

    def read(self, size: int = -1) -> bytes: ...

    def close(self) -> None: ...


class Answer:
    """A successful GET: status (200 or 206), headers (lower-case names), body."""

    def __init__(self, status: int, headers: Mapping[str, str], body: Body) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")


class ObjectGets(Protocol):
    """GET one object of the bucket; errors raise as the boto3 client would raise them."""

    def get(self, key: str, *, byte_range: str | None, if_match: str | None) -> Answer: ...


class SignedGets:
    """SigV4-signed GETs over the client's connection pool (see the module docstring)."""

    def __init__(
        self, *, http: Any, base: str, host: str, path_prefix: str, region: str, credentials: Any
    ) -> None:
        self.http = http
        self.base = base
        self.host = host
        self.path_prefix = path_prefix  # "/bucket/" (path style) or "/" (virtual host)
        self.region = region
        self.credentials = credentials  # botocore Credentials; refreshes itself when it must
        self.pool = _direct_pool(http, base)

    def url_path(self, key: str) -> str:
        """The request path for `key`, encoded as botocore encodes it."""
        return self.path_prefix + quote(key, safe="/~")

    def get(self, key: str, *, byte_range: str | None, if_match: str | None) -> Answer:
        path = self.url_path(key)
        frozen = self.credentials.get_frozen_credentials()
        secret = Secret(frozen.access_key, frozen.secret_key, frozen.token)
        headers = sign_get(self.host, path, self.region, secret, amz_date())
        if byte_range is not None:
            headers["range"] = byte_range
        if if_match is not None:
            headers["if-match"] = if_match
        if self.pool is not None:
            raw = self.pool.get(path, headers)
        else:
            request = AWSPreparedRequest("GET", self.base + path, headers, None, stream_output=True)
            raw = self.http.send(request).raw  # transport failures: botocore exceptions
        if raw.status >= 300:
            raise _client_error(raw.status, raw)
        return Answer(raw.status, raw.headers, _RawBody(raw))


class _Pool:
    """The client's urllib3 connection pool for one base URL, used directly.

    What botocore's `URLLib3Session.send` works out on every request (the
    proxy for the URL, the pool, TLS verification settings, the request
    target) is worked out once here; its other per-request work (a request
    and a response object, a copy of the headers) cost ~15% of a range GET's
    CPU. Transport failures become the botocore exceptions `send` raises.
    This leans on botocore internals: when they are not there (another
    botocore), `SignedGets` goes through `send` instead.
    """

    def __init__(self, http: Any, base: str) -> None:
        self.proxy_url = http._proxy_config.proxy_url_for(base)
        self.pool = http._get_connection_manager(base, self.proxy_url).connection_from_url(base)
        http._setup_ssl_cert(self.pool, base, http._verify)
        # through a plain-HTTP proxy the request line carries the absolute URL
        self.prefix = base if http._get_request_target(base + "/", self.proxy_url) != "/" else ""
        self.base = base

    def get(self, path: str, headers: dict[str, str]) -> Any:
        url = self.base + path
        try:
            return self.pool.urlopen(
                "GET",
                self.prefix + path,
                headers=headers,
                retries=Retry(False),
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
                enforce_content_length=False,
            )
        except ue.SSLError as exc:  # the same order and mapping as botocore's send
            raise bex.SSLError(endpoint_url=url, error=exc) from None
        except (ue.NewConnectionError, socket.gaierror) as exc:
            raise bex.EndpointConnectionError(endpoint_url=url, error=exc) from None
        except ue.ProxyError as exc:
            proxy = mask_proxy_url(self.proxy_url or "")
            raise bex.ProxyConnectionError(proxy_url=proxy, error=exc) from None
        except ue.ConnectTimeoutError as exc:
            raise bex.ConnectTimeoutError(endpoint_url=url, error=exc) from None
        except ue.ReadTimeoutError as exc:
            raise bex.ReadTimeoutError(endpoint_url=url, error=exc) from None
        except ue.ProtocolError as exc:
            raise bex.ConnectionClosedError(error=exc, endpoint_url=url) from None
        except Exception as exc:
            raise bex.HTTPClientError(error=exc) from None


def _direct_pool(http: Any, base: str) -> _Pool | None:
    try:
        return _Pool(http, base)
    except (AttributeError, TypeError):  # botocore's internals changed: use its send()
        return None


class _RawBody:
    """A urllib3 body whose failures look like botocore's (so they are retried or resumed).

    botocore's HTTP session turns off urllib3's length check; a body that
    ends before its Content-Length is an `IncompleteReadError` here, as from
    botocore's StreamingBody. A connection goes back to the pool only when
    its body was read to the end; otherwise closing drops it.
    """

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        length = raw.headers.get("content-length")
        self.expected = int(length) if length is not None else None
        self.received = 0
        self.done = False

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.raw.read(None if size < 0 else size)
        except ue.ReadTimeoutError as exc:
            raise bex.ReadTimeoutError(endpoint_url=str(exc.url), error=exc) from None
        except (ue.HTTPError, ConnectionError) as exc:
            raise bex.ResponseStreamingError(error=exc) from None
        self.received += len(data)
        if size < 0 or (size > 0 and not data):
            if self.expected is not None and self.received != self.expected:
                raise bex.IncompleteReadError(
                    actual_bytes=self.received, expected_bytes=self.expected
                )
            self.done = True
        return data

    def close(self) -> None:
        if self.done:
            self.raw.release_conn()
        else:
            self.raw.close()


def _client_error(status: int, raw: Any) -> bex.ClientError:
    """The ClientError botocore would raise for this error answer (its body read)."""
    try:
        body = raw.read(MAX_ERROR_BODY) or b""
    except (ue.HTTPError, OSError):
        body = b""
    finally:
        raw.close()
    fields = {
        name.decode(): value.decode("utf-8", "replace")
        for name, value in _ERROR_FIELD.findall(body)
    }
    error = {"Code": fields.get("Code") or str(status), "Message": fields.get("Message", "")}
    meta = {"HTTPStatusCode": status, "HTTPHeaders": dict(raw.headers.items())}
    return bex.ClientError({"Error": error, "ResponseMetadata": meta}, "GetObject")


class ClientGets:
    """`ObjectGets` over `client.get_object` (for configurations SignedGets cannot mirror)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def get(self, key: str, *, byte_range: str | None, if_match: str | None) -> Answer:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if byte_range is not None:
            params["Range"] = byte_range
        if if_match is not None:
            params["IfMatch"] = if_match
        response = self.client.get_object(**params)
        meta = response["ResponseMetadata"]
        return Answer(meta["HTTPStatusCode"], meta["HTTPHeaders"], response["Body"])


class LazyGets:
    """`ClientGets` until one of its requests has shown how to do without it.

    The first successful GET goes through the client with a `before-send`
    hook that sees the request exactly as sent (after endpoint rules, the
    addressing style and any region redirect the client has cached); its URL
    and the region in its signature's scope configure `SignedGets` for every
    later GET. A request that does not look like a SigV4-signed S3 GET of the
    key (another signer, S3 Express, a query string) keeps `ClientGets`.
    """

    def __init__(self, client: Any, bucket: str, credentials: Any) -> None:
        self.client = client
        self.bucket = bucket
        self.credentials = credentials
        self.fallback = ClientGets(client, bucket)
        self._chosen: ObjectGets | None = None
        self._lock = threading.Lock()

    def get(self, key: str, *, byte_range: str | None, if_match: str | None) -> Answer:
        chosen = self._chosen
        if chosen is not None:
            return chosen.get(key, byte_range=byte_range, if_match=if_match)
        if not self._lock.acquire(blocking=False):  # another thread is learning
            return self.fallback.get(key, byte_range=byte_range, if_match=if_match)
        try:
            return self._learn(key, byte_range, if_match)
        finally:
            self._lock.release()

    def _learn(self, key: str, byte_range: str | None, if_match: str | None) -> Answer:
        learner = threading.get_ident()
        sent: list[AWSPreparedRequest] = []

        def capture(request: AWSPreparedRequest, **_: Any) -> None:
            if threading.get_ident() == learner:
                sent.append(request)

        events = self.client.meta.events
        events.register("before-send.s3.GetObject", capture, unique_id=f"learn-{id(self)}")
        try:
            answer = self.fallback.get(key, byte_range=byte_range, if_match=if_match)
        finally:
            events.unregister("before-send.s3.GetObject", unique_id=f"learn-{id(self)}")
        if self._chosen is None and sent:
            signed = signed_gets_like(sent[-1], key, self.client, self.credentials)
            if signed is None:
                log.debug("artifact GETs for s3://%s stay with boto3's client", self.bucket)
            else:
                log.debug(
                    "artifact GETs for s3://%s are signed here (%s%s..., region %s)",
                    self.bucket,
                    redact(signed.base),
                    signed.path_prefix,
                    signed.region,
                )
            self._chosen = signed or self.fallback
        return answer


def signed_gets_like(
    request: AWSPreparedRequest, key: str, client: Any, credentials: Any
) -> SignedGets | None:
    """`SignedGets` sending what the client sent in `request` (a GET of `key`), or None."""
    parts = urlsplit(request.url)
    authorization = request.headers.get("Authorization") or b""
    if isinstance(authorization, bytes):  # botocore keeps the signed value as bytes
        authorization = authorization.decode("ascii", "replace")
    algorithm, _, rest = authorization.partition(" Credential=")
    scope = rest.split(",", 1)[0].split("/")  # access key, day, region, service, terminator
    encoded = quote(key, safe="/~")
    usable = (
        credentials is not None
        and algorithm == ALGORITHM
        and len(scope) == 5
        and scope[3] == "s3"
        and not parts.query
        and parts.hostname is not None
        and parts.path.endswith(encoded)
    )
    if not usable:
        return None
    return SignedGets(
        http=client._endpoint.http_session,  # the client's pool, TLS and proxy settings
        base=f"{parts.scheme}://{parts.netloc}",
        host=host_header(parts.scheme, parts.hostname or "", parts.port),
        path_prefix=parts.path[: -len(encoded)],
        region=scope[2],
        credentials=credentials,
    )
