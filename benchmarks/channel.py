"""Putting synthetic channels into S3 and taking outputs out again.

Artifacts are generated in memory (a temporary file for the very large ones)
and uploaded straight to the server, not through the counting proxy: setting
up is not what is measured.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from .gen import Payload, Spec, write_artifact

IN_MEMORY_LIMIT = 512 << 20  # larger artifacts go through a temporary file
TRANSFER = TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=64 << 20)
UPLOAD_THREADS = 16


def client(endpoint: str, access_key: str, secret_key: str) -> Any:
    """A boto3 S3 client for the server (path-style, no optional checksums)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            max_pool_connections=UPLOAD_THREADS * 2,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def upload(
    s3: Any, bucket: str, prefix: str, specs: Iterable[Spec], payload: Payload, scratch: Path
) -> dict[str, tuple[int, int]]:
    """Generate and upload artifacts; return key (relative) → (size, info bytes)."""

    def one(spec: Spec) -> tuple[str, int, int]:
        key = f"{prefix}{spec.key}"
        if spec.size <= IN_MEMORY_LIMIT:
            buffer = io.BytesIO()
            info = write_artifact(spec, payload, buffer)
            size = buffer.tell()
            if size < TRANSFER.multipart_threshold:  # upload_fileobj costs ms per object
                s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
            else:
                buffer.seek(0)
                s3.upload_fileobj(buffer, bucket, key, Config=TRANSFER)
            return spec.key, size, info
        scratch.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=scratch, suffix=spec.fmt)
        try:
            with os.fdopen(fd, "wb") as fh:
                info = write_artifact(spec, payload, fh)
                size = fh.tell()
            s3.upload_file(name, bucket, key, Config=TRANSFER)
        finally:
            os.unlink(name)
        return spec.key, size, info

    specs = list(specs)
    # the large ones first, so they overlap with the many small ones
    specs.sort(key=lambda s: -s.size)
    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        return {key: (size, info) for key, size, info in pool.map(one, specs)}


def list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    """Every key under prefix (relative to it)."""
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"][len(prefix) :] for o in page.get("Contents", [])]
    return keys


def delete(s3: Any, bucket: str, prefix: str, keys: Iterable[str]) -> int:
    """Delete these keys (relative to prefix) in batches; return how many."""
    keys = list(keys)
    for start in range(0, len(keys), 1000):
        batch = [{"Key": prefix + k} for k in keys[start : start + 1000]]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
    return len(keys)


def remove_outputs(s3: Any, bucket: str, prefix: str, artifacts: set[str]) -> int:
    """Delete everything under prefix that is not one of `artifacts` (outputs, caches)."""
    return delete(
        s3, bucket, prefix, [k for k in list_keys(s3, bucket, prefix) if k not in artifacts]
    )
