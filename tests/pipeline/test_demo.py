"""Issue 2, acceptance 7: `make demo` (python -m dev.demo) runs to the end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_to_the_end(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dev.demo"],
        cwd=tmp_path,
        # dev/ is tooling of the repository, not of the installed package
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Demo finished" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    # the incremental step re-read exactly the added and the replaced artifact
    assert "`libfoo-1.3.0-h1_0.conda` added with weak" in done.stdout
    assert "`docs-1.0-0.conda` changed" in done.stdout
    # the pull-request preview shows the patch and the lint, and writes nothing
    assert "Mode **preview**" in done.stdout
    assert "(dropped-run-exports)" in done.stdout
    channel = tmp_path / ".demo" / "channel"
    assert (channel / "linux-64" / "run_exports.json").is_file()
