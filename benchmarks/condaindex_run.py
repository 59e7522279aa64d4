"""The conda-index contender, run with the benchmark venv's Python (see benchmarks/README).

`python -m benchmarks.condaindex_run s3://B/P ENDPOINT WORKDIR`

conda-index only indexes a local directory, so using it on an S3 channel
means: bring the local copy in line with the bucket (download what is new or
changed, drop what is gone), run `conda-index --run-exports --write-shards
--no-current-repodata`, and upload the outputs whose bytes changed. All three
count in its time. The local copy and conda-index's own cache stay in WORKDIR
between runs (a persistent runner: the most favourable case for it).

conda-index imports two `conda` modules that PyPI does not carry; the
benchmark's shim (benchmarks/shim) is put on sys.path for this process only.
`--no-current-repodata` because current_repodata.json needs conda's solver.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from botocore.config import Config

SHIM = Path(__file__).resolve().parent / "shim"
THREADS = 8
CHUNK = 1 << 20
ARTIFACT_SUFFIXES = (".conda", ".tar.bz2")


def _client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(
            s3={"addressing_style": "path"},
            max_pool_connections=THREADS * 2,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def sync_down(client, bucket: str, prefix: str, root: Path) -> int:
    """Download new or changed artifacts under prefix into root; return how many."""
    listed: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix) :]
            if rel.endswith(ARTIFACT_SUFFIXES) and rel.count("/") == 1:
                listed[rel] = obj["Size"]
    for path in root.glob("*/*"):
        rel = path.relative_to(root).as_posix()
        if rel.endswith(ARTIFACT_SUFFIXES) and rel not in listed:
            path.unlink()
    todo = [
        rel
        for rel, size in listed.items()
        if not (root / rel).is_file() or (root / rel).stat().st_size != size
    ]

    def fetch(rel: str) -> None:
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        body = client.get_object(Bucket=bucket, Key=prefix + rel)["Body"]
        with open(target, "wb") as fh:
            while chunk := body.read(CHUNK):
                fh.write(chunk)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(fetch, todo))
    return len(todo)


def upload_outputs(client, bucket: str, prefix: str, root: Path, manifest: Path) -> int:
    """Upload every output file (not an artifact, not hidden) whose bytes changed."""
    known = json.loads(manifest.read_text()) if manifest.is_file() else {}
    todo = []
    for path in sorted(root.glob("*/*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or rel.endswith(ARTIFACT_SUFFIXES) or "/." in f"/{rel}":
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if known.get(rel) != digest:
            todo.append(rel)
            known[rel] = digest
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda rel: client.upload_file(str(root / rel), bucket, prefix + rel), todo))
    manifest.write_text(json.dumps(known))
    return len(todo)


def main(argv: list[str]) -> int:
    url, endpoint, workdir = argv
    bucket, _, prefix = url[len("s3://") :].partition("/")
    prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    root = Path(workdir) / "channel"
    root.mkdir(parents=True, exist_ok=True)
    client = _client(endpoint)
    fetched = sync_down(client, bucket, prefix, root)
    sys.path.insert(0, str(SHIM))
    from conda_index.cli import cli

    cli([str(root), "--run-exports", "--write-shards", "--no-current-repodata"])
    uploaded = upload_outputs(client, bucket, prefix, root, Path(workdir) / "uploaded.json")
    print(json.dumps({"downloaded": fetched, "uploaded": uploaded}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
