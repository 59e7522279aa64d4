"""The S3 half of `make demo`: the sample channel served by a local SeaweedFS.

It starts `weed mini` on loopback (the same launcher the tests use), uploads
`.demo/channel`, indexes `s3://demo/channel` twice (the second run finds
nothing new: it lists, reads no artifact and writes nothing) and stops the
server.
"""

from __future__ import annotations

import os
from pathlib import Path

import boto3
from botocore.config import Config

from dev.demo import banner, run
from dev.seaweed import SeaweedServer
from indexer.storage.s3.client import quiet_libraries

BUCKET = "demo"


def s3_demo(work: Path) -> None:
    """Index `work/channel` through a throw-away SeaweedFS."""
    banner("4. Start a local S3 server (SeaweedFS) and upload the channel")
    quiet_libraries()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    with SeaweedServer(work / "seaweedfs") as server:
        try:
            os.environ["AWS_ACCESS_KEY_ID"] = server.admin.access_key
            os.environ["AWS_SECRET_ACCESS_KEY"] = server.admin.secret_key
            client = boto3.client(
                "s3",
                endpoint_url=server.endpoint_url,
                region_name="us-east-1",
                config=Config(request_checksum_calculation="when_required"),
            )
            client.create_bucket(Bucket=BUCKET)
            channel = work / "channel"
            for path in sorted(p for p in channel.rglob("*") if p.is_file()):
                rel = path.relative_to(channel).as_posix()
                if not rel.startswith(".") and "/" in rel and rel.endswith((".conda", ".tar.bz2")):
                    client.upload_file(str(path), BUCKET, f"channel/{rel}")
            print(f"S3 endpoint {server.endpoint_url}, channel s3://{BUCKET}/channel", flush=True)
            url = f"s3://{BUCKET}/channel"
            banner("5. Index the channel in S3 (range reads; the cache goes into the bucket)")
            run("index", url, "--endpoint-url", server.endpoint_url)
            banner("6. Again, as a fresh runner would: the cache comes from the bucket")
            run("index", url, "--endpoint-url", server.endpoint_url)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    print("S3 server stopped.", flush=True)
