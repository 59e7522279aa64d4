"""The rattler-index contender: `python -m benchmarks.rattler_run s3://B/P ENDPOINT`.

Runs py-rattler's `index_s3` (rattler-index) with its defaults (repodata.json,
.zst and shards), path-style addressing against ENDPOINT, credentials from
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION.
"""

from __future__ import annotations

import asyncio
import os
import sys

from rattler.index import S3Credentials, index_s3


def main(argv: list[str]) -> int:
    url, endpoint = argv
    credentials = S3Credentials(
        endpoint_url=endpoint,
        region=os.environ.get("AWS_REGION", "us-east-1"),
        access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        addressing_style="path",
    )
    asyncio.run(index_s3(url, credentials=credentials))
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    # Leave without interpreter finalization: py-rattler's runtime threads can still hold
    # the GIL state then ("PyGILState_Release ... finalizing", status -6) after a run that
    # finished its work; the index is written by now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
