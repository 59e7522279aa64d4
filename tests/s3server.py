"""The S3 endpoint the tests use: a SeaweedFS started for the session, or yours.

By default `dev.seaweed.SeaweedServer` starts `weed mini` on free loopback
ports with credentials enforced: an admin identity (full access) and a reader
identity (Read and List only).

To test against another S3-compatible endpoint instead, set

    RUN_EXPORTS_INDEX_TEST_S3=http://127.0.0.1:9000       # the endpoint URL
    AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...       # an identity that may
                                                          # create buckets and write
    RUN_EXPORTS_INDEX_TEST_S3_READONLY=ACCESS_KEY:SECRET  # optional: a Read/List-only
                                                          # identity (tests needing it
                                                          # skip without it)
    AWS_REGION=us-east-1                                  # optional

(The tests of unsigned reads need SeaweedFS's anonymous identity,
`dev.seaweed.ANONYMOUS_ACTIONS`, and skip on an external endpoint.)

Every test gets its own, uniquely named bucket.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from dev.seaweed import Credentials, SeaweedServer

ENV_ENDPOINT = "RUN_EXPORTS_INDEX_TEST_S3"
ENV_READONLY = "RUN_EXPORTS_INDEX_TEST_S3_READONLY"


@dataclass(frozen=True)
class S3Endpoint:
    endpoint_url: str
    admin: Credentials
    reader: Credentials | None
    region: str = "us-east-1"
    # dev.seaweed.ANONYMOUS_ACTIONS hold: unsigned reads of rei-public-* and rei-pubch-*
    anonymous: bool = False

    def client(self, credentials: Credentials | None = None, endpoint_url: str = "") -> Any:
        creds = credentials or self.admin
        return boto3.client(
            "s3",
            endpoint_url=endpoint_url or self.endpoint_url,
            aws_access_key_id=creds.access_key,
            aws_secret_access_key=creds.secret_key,
            region_name=self.region,
            config=Config(
                s3={"addressing_style": "path"},
                max_pool_connections=32,
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def new_bucket(self, label: str = "t") -> str:
        name = f"rei-{label[:20].lower().replace('_', '-')}-{uuid.uuid4().hex[:10]}"
        self.client().create_bucket(Bucket=name)
        return name

    def env(self, credentials: Credentials | None = None) -> dict[str, str]:
        """AWS_* variables that point boto3's default chain at this endpoint."""
        creds = credentials or self.admin
        return {
            "AWS_ACCESS_KEY_ID": creds.access_key,
            "AWS_SECRET_ACCESS_KEY": creds.secret_key,
            "AWS_REGION": self.region,
        }


@contextmanager
def s3_endpoint() -> Iterator[S3Endpoint]:
    """The endpoint for a test session (started and stopped here unless external)."""
    external = os.environ.get(ENV_ENDPOINT)
    if external:
        reader = None
        if os.environ.get(ENV_READONLY):
            reader = Credentials(*os.environ[ENV_READONLY].split(":", 1))
        yield S3Endpoint(
            external,
            Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]),
            reader,
            os.environ.get("AWS_REGION", "us-east-1"),
        )
        return
    with SeaweedServer() as server:
        yield S3Endpoint(server.endpoint_url, server.admin, server.reader, anonymous=True)


def upload_tree(client: Any, bucket: str, prefix: str, root: Path, jobs: int = 16) -> list[str]:
    """Upload every file under `root` to `bucket/prefix/...`; return the keys."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    keys = [f"{prefix}/{p.relative_to(root).as_posix()}".lstrip("/") for p in files]
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(lambda f, k: client.upload_file(str(f), bucket, k), files, keys))
    return keys


def download_prefix(client: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    """key (relative to prefix) → bytes of every object under it."""
    out: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            out[obj["Key"][len(prefix) :].lstrip("/")] = body
    return out
