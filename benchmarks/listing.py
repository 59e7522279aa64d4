"""The floor for a warm run: `python -m benchmarks.listing s3://B/P ENDPOINT SUBDIR...`.

A bare paginated, delimited ListObjectsV2 of each subdir with boto3, one
after another, in a fresh interpreter (as every contender pays for one).
Prints the number of objects listed.
"""

from __future__ import annotations

import os
import sys

import boto3
from botocore.config import Config


def main(argv: list[str]) -> int:
    url, endpoint, *subdirs = argv
    bucket, _, prefix = url[len("s3://") :].partition("/")
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}),
    )
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
