"""The floor for a warm run: `python -m benchmarks.listing [--plain] s3://B/P ENDPOINT SUBDIR...`.

A bare paginated, delimited ListObjectsV2 of each subdir, one after another,
in a fresh interpreter (as every contender pays for one), nothing else. By
default with the indexer's own S3 client (the same botocore configuration,
including its fast timestamp parser), so the comparison is listing against
listing; `--plain` uses a boto3 client with botocore's defaults. Prints the
number of objects listed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import boto3
from botocore.config import Config


def plain_client(endpoint: str) -> Any:
    """A boto3 client with botocore's defaults."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}),
    )


def our_client(endpoint: str) -> Any:
    """The indexer's own client (imported here: only this mode needs it).

    Its module is internal and may move (issue 14); without it this falls back to the
    stock client and says so on stderr (the contender's log).
    """
    try:
        from indexer.storage.s3.client import S3Options, make_client
    except ImportError:
        try:
            from indexer.s3client import S3Options, make_client
        except ImportError as error:
            print(f"indexer.s3client not found ({error}): stock boto3 client", file=sys.stderr)
            return plain_client(endpoint)
    return make_client(S3Options(endpoint_url=endpoint, addressing_style="path"))


def main(argv: list[str]) -> int:
    plain = argv[:1] == ["--plain"]
    url, endpoint, *subdirs = argv[1:] if plain else argv
    bucket, _, prefix = url[len("s3://") :].partition("/")
    client = plain_client(endpoint) if plain else our_client(endpoint)
    pages = client.get_paginator("list_objects_v2")
    count = 0
    for subdir in subdirs:
        folder = f"{prefix.strip('/')}/{subdir}/".lstrip("/")
        for page in pages.paginate(Bucket=bucket, Prefix=folder, Delimiter="/"):
            count += len(page.get("Contents", []))
    print(count)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
