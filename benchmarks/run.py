"""`make bench`: every contender on the same synthetic S3 channel, in one run.

    python -m benchmarks.run [--quick | --smoke] [--contenders ours-range,...]
                             [--scenarios cold-small,...] [--work DIR] [--keep]

Starts a local SeaweedFS (credentials enforced) behind a counting proxy,
generates the channels, and for each scenario runs each contender in a fresh
process; between contenders every output (and cache) is removed from the
bucket so each starts from the same artifacts. Prints the table and writes
`results.json` and `results.md` into the work folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import channel, contenders, table
from .contenders import CONDA_INDEX, LISTING, LISTING_PLAIN, OURS_RANGE, OURS_SHARDS, Run, Target
from .gen import Payload, specs
from .profiles import PROFILES, SCENARIOS, Profile
from .proxy import CountingProxy

BUCKET = "bench"
WORK = Path(__file__).resolve().parent / "work"


class Bench:
    """One benchmark session: a server, a proxy, the runs so far."""

    def __init__(
        self,
        profile: Profile,
        chosen: list[str],
        work: Path,
        s3: Any,
        env: dict,
        proxy: CountingProxy,
        server_url: str,
    ) -> None:
        self.profile, self.chosen, self.work = profile, chosen, work
        self.s3, self.env, self.proxy, self.server_url = s3, env, proxy, server_url
        self.payload = Payload()
        self.runs: list[Run] = []
        self.floors: dict[str, int] = {}
        self.notes: dict[str, str] = {}
        self.conda_excess: list[int] = []

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def target(
        self, prefix: str, scenario: str, subdirs: list[str], direct: bool = False
    ) -> Target:
        endpoint = self.server_url if direct else self.proxy.url
        folder = self.work / "".join(c if c.isalnum() else "-" for c in scenario)
        return Target(f"s3://{BUCKET}/{prefix}", endpoint, self.env, subdirs, folder)

    def measure(self, contender: str, target: Target, scenario: str, direct: bool = False) -> Run:
        self.log(f"{scenario}: {contender} ...")
        load = os.getloadavg()[0]  # other work on the machine, for the record
        run = contenders.run(contender, target, scenario, None if direct else self.proxy)
        self.log(
            f"{scenario}: {contender}: {run.wall_s:.1f} s, "
            f"{run.tally.get('bytes_read', 0) / 1e6:.1f} MB read, {run.peak_rss_mb:.0f} MB RSS"
        )
        run.load = load
        self.runs.append(run)
        self.save_partial()
        return run

    def save_partial(self) -> None:
        """Every run so far, in case a later scenario fails."""
        partial = self.work.parent / "results.partial.json"
        partial.write_text(json.dumps([r.as_dict() for r in self.runs], indent=1))

    def measure_median(self, contender: str, target: Target, scenario: str) -> Run:
        """The run of median wall time out of `repeat` (the state must not change)."""
        runs = [self.measure(contender, target, scenario) for _ in range(self.profile.repeat)]
        for r in runs:
            self.runs.remove(r)
        best = sorted(runs, key=lambda r: r.wall_s)[len(runs) // 2]
        best.note = f"median of {len(runs)}: " + ", ".join(f"{r.wall_s:.2f}" for r in runs) + " s"
        self.runs.append(best)
        return best

    def upload(self, prefix: str, items: list) -> dict[str, tuple[int, int]]:
        started = time.monotonic()
        done = channel.upload(self.s3, BUCKET, prefix, items, self.payload, self.work / "scratch")
        total = sum(size for size, _ in done.values())
        self.log(
            f"uploaded {len(done)} artifacts, {total / 1e9:.2f} GB, "
            f"in {time.monotonic() - started:.0f} s"
        )
        return done

    def reset(self, prefix: str, artifacts: dict) -> None:
        channel.remove_outputs(self.s3, BUCKET, prefix, set(artifacts))

    # -- scenarios -----------------------------------------------------------------
    def main_channel(self) -> None:
        """cold 2,000; cold 10,000 and warm with 1% new, on one growing channel."""
        p, prefix = self.profile, "main/"
        first = specs(p.cold_small, seed=1, median=p.median, sigma=p.sigma, cap=p.cap, huge=p.huge)
        rest = specs(p.cold_large - p.cold_small, seed=2, median=p.median, sigma=p.sigma, cap=p.cap)
        new = specs(
            max(1, round(p.cold_large * p.new_share)),
            seed=3,
            median=p.median,
            sigma=p.sigma,
            cap=p.cap,
        )
        subdirs = sorted({s.subdir for s in first + rest + new})
        artifacts = self.upload(prefix, first)
        if "cold-small" in p.scenarios:
            name = f"cold {p.cold_small:,}"
            self.cold(name, prefix, subdirs, artifacts, artifacts)
        if not {"cold-large", "warm-new"} & set(p.scenarios):
            return
        artifacts |= self.upload(prefix, rest)
        cold_name, warm_name = (
            f"cold {p.cold_large:,}",
            f"warm +{len(new)} new ({p.cold_large + len(new):,})",
        )
        listed = False
        for contender in self.chosen:
            target = self.target(prefix, cold_name, subdirs)
            if not listed:
                self.floor(cold_name, target, artifacts, artifacts)
            run = self.measure(contender, target, cold_name)
            self.check_conda_bytes(run, prefix, artifacts)
            added = self.upload(prefix, new)
            warm = self.target(prefix, warm_name, subdirs)
            warm.work = target.work  # conda-index keeps its local copy between the two runs
            if not listed:
                self.floor(warm_name, warm, added, {**artifacts, **added})
                listed = True
            self.measure(contender, warm, warm_name)
            channel.delete(self.s3, BUCKET, prefix, added)
            self.reset(prefix, artifacts)
            shutil.rmtree(target.work / "conda-index", ignore_errors=True)

    def cold(
        self, name: str, prefix: str, subdirs: list[str], artifacts: dict, to_read: dict
    ) -> None:
        target = self.target(prefix, name, subdirs)
        self.floor(name, target, to_read, artifacts)
        for contender in self.chosen:
            run = self.measure(contender, target, name)
            self.check_conda_bytes(run, prefix, artifacts)
            self.reset(prefix, artifacts)
            shutil.rmtree(target.work / "conda-index", ignore_errors=True)

    def floor(self, name: str, target: Target, to_read: dict, artifacts: dict) -> Run:
        """The least any tool must read: one bare listing plus the info of what is new."""
        run = self.measure(LISTING, target, name)
        self.floors[name] = run.tally["list_bytes"] + sum(info for _, info in to_read.values())
        return run

    def check_conda_bytes(self, run: Run, prefix: str, artifacts: dict) -> None:
        """Bytes read per `.conda` beyond its info member, in range-read mode."""
        if run.contender != OURS_RANGE:
            return
        for key, nbytes in run.per_key.items():
            rel = key[len(prefix) :]
            if rel.endswith(".conda") and rel in artifacts:
                self.conda_excess.append(nbytes - artifacts[rel][1])

    def big(self) -> None:
        """One very large artifact (memory)."""
        p, prefix = self.profile, "big/"
        one = specs(
            1,
            seed=4,
            median=p.median,
            huge=(p.big,),
            subdirs=("linux-64",),
            weights=(1,),
            tar_bz2_share=0,
        )
        noarch = specs(1, seed=5, median=4096, subdirs=("noarch",), weights=(1,), tar_bz2_share=0)
        artifacts = self.upload(prefix, one + noarch)
        name = f"one {p.big / 2**30:.3g} GiB artifact"
        self.cold(name, prefix, ["linux-64", "noarch"], artifacts, artifacts)
        channel.delete(self.s3, BUCKET, prefix, channel.list_keys(self.s3, BUCKET, prefix))

    def wide(self) -> None:
        """Warm, nothing new, many listed objects (tiny artifacts)."""
        p, prefix = self.profile, "wide/"
        items = specs(
            p.wide,
            seed=6,
            median=p.wide_payload,
            sigma=0.1,
            cap=4 * p.wide_payload,
            subdirs=("linux-64", "noarch"),
            weights=(0.95, 0.05),
        )
        items = [replace(s, size=max(1, s.size)) for s in items]
        artifacts = self.upload(prefix, items)
        subdirs = ["linux-64", "noarch"]
        cold_name, warm_name = (
            f"cold {p.wide:,} tiny (set-up; direct, not counted)",
            f"warm 0 new ({p.wide:,} tiny)",
        )
        self.measure_median(LISTING, self.target(prefix, warm_name, subdirs), warm_name)
        self.measure_median(LISTING_PLAIN, self.target(prefix, warm_name, subdirs), warm_name)
        ours = [c for c in (OURS_RANGE, OURS_SHARDS) if c in self.chosen]
        others = [c for c in self.chosen if c not in ours]
        for contender in ours:  # the cache carries over: the second mode's cold run only
            target = self.target(prefix, cold_name, subdirs, direct=True)  # adds checksums
            run = self.measure(contender, target, cold_name, direct=True)
            if contender != ours[0]:
                run.note = f"after {ours[0]}: reads only checksums, renders shards"
            self.measure_median(contender, self.target(prefix, warm_name, subdirs), warm_name)
        if ours:
            self.reset(prefix, artifacts)
        for contender in others:
            if contender == CONDA_INDEX and p.wide > 20_000:
                self.notes["wide-conda-index"] = (
                    f"conda-index not run at {p.wide:,}: its cold set-up alone (download "
                    "and index every artifact) would take longer than the rest of the run"
                )
                continue
            target = self.target(prefix, cold_name, subdirs, direct=True)
            self.measure(contender, target, cold_name, direct=True)
            warm = self.target(prefix, warm_name, subdirs)
            warm.work = target.work
            self.measure_median(contender, warm, warm_name)
            self.reset(prefix, artifacts)
            shutil.rmtree(target.work / "conda-index", ignore_errors=True)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0]
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small N, for development")
    mode.add_argument("--smoke", action="store_true", help="smallest N (the smoke test)")
    parser.add_argument(
        "--contenders",
        default=",".join(contenders.SHORT),
        help="comma-separated: " + ", ".join(contenders.SHORT),
    )
    parser.add_argument(
        "--scenarios", default="", help="comma-separated subset of: " + ", ".join(SCENARIOS)
    )
    parser.add_argument(
        "--work", type=Path, default=WORK, help="work folder (default benchmarks/work)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the server's data afterwards")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from dev.seaweed import SeaweedServer

    args = parse(sys.argv[1:] if argv is None else argv)
    profile = PROFILES["smoke" if args.smoke else "quick" if args.quick else "full"]
    if args.scenarios:
        profile = replace(profile, scenarios=tuple(args.scenarios.split(",")))
    chosen = [contenders.SHORT[c] for c in args.contenders.split(",")]
    work = args.work.resolve()
    shutil.rmtree(work / "runs", ignore_errors=True)
    server = SeaweedServer(work / "seaweed")
    started = time.monotonic()
    try:
        server.start()
        s3 = channel.client(server.endpoint_url, server.admin.access_key, server.admin.secret_key)
        s3.create_bucket(Bucket=BUCKET)
        env = {
            "AWS_ACCESS_KEY_ID": server.admin.access_key,
            "AWS_SECRET_ACCESS_KEY": server.admin.secret_key,
            "AWS_REGION": "us-east-1",
        }
        with CountingProxy(server.endpoint_url) as proxy:
            bench = Bench(profile, chosen, work / "runs", s3, env, proxy, server.endpoint_url)
            if {"cold-small", "cold-large", "warm-new"} & set(profile.scenarios):
                bench.main_channel()
            if "big" in profile.scenarios:
                bench.big()
            if "wide" in profile.scenarios:
                bench.wide()
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work / "seaweed", ignore_errors=True)
    summary = table.summary(bench.runs, bench.floors, bench.conda_excess)
    results = {
        "profile": profile.name,
        "command": " ".join(
            ["python -m benchmarks.run", *(argv if argv is not None else sys.argv[1:])]
        ),
        "duration_s": time.monotonic() - started,
        "runs": [r.as_dict() for r in bench.runs],
        "floors": bench.floors,
        "conda_excess": summary["conda_excess"],
        "notes": bench.notes,
    }
    (work / "results.json").write_text(json.dumps(results, indent=1))
    notes = "".join(f"\n- {note}" for note in bench.notes.values())
    markdown = table.markdown(bench.runs, bench.floors) + notes + "\n\n" + summary["text"]
    (work / "results.md").write_text(markdown + "\n")
    print(markdown)
    print(f"\ntotal {results['duration_s'] / 60:.1f} min; results in {work}/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
