"""`make bench`: every contender on the same synthetic S3 channel, in one run.

    python -m benchmarks.run [--quick | --smoke] [--contenders ours-range,...]
                             [--scenarios cold-small,...] [--network loopback,runner]
                             [--compare-ref REF [--rounds N]] [--cold-large N]
                             [--work DIR] [--keep]

Starts a local SeaweedFS (credentials enforced) behind one counting proxy per
network profile (`loopback`; `runner`: +20 ms per response, 200 MB/s shared),
generates the channels, and for each scenario runs each contender in a fresh
process on each profile; between contenders every output (and cache) is removed from the
bucket so each starts from the same artifacts. Prints the table and writes
`results.json` and `results.md` into the work folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import channel, contenders, table
from .contenders import (
    CONDA_INDEX,
    LISTING,
    LISTING_PLAIN,
    OURS_RANGE,
    OURS_SHARDS,
    ROOT,
    Revision,
    Run,
    Target,
)
from .devtools import dev_module
from .gen import Payload, specs
from .profiles import PROFILES, SCENARIOS, Profile
from .proxy import NETWORKS, CountingProxy

BUCKET = "bench"
WORK = Path(__file__).resolve().parent / "work"


class Bench:
    """One benchmark session: a server, one proxy per network profile, the runs so far."""

    def __init__(
        self,
        profile: Profile,
        chosen: list[str],
        work: Path,
        s3: Any,
        env: dict,
        proxies: dict[str, CountingProxy],
        server_url: str,
        revisions: dict[str, Revision] | None = None,
        rounds: int = 1,
    ) -> None:
        self.profile, self.chosen, self.work = profile, chosen, work
        self.s3, self.env, self.proxies, self.server_url = s3, env, proxies, server_url
        self.networks = list(proxies)
        # compared revisions: contender name ("ours --no-shards @ pre-layout (0fbaafe)") → it
        self.revisions = revisions or {}
        self.rounds = rounds
        self.payload = Payload()
        self.runs: list[Run] = []
        self.floors: dict[str, int] = {}
        self.upload_floors: set[tuple[str, str]] = set()  # (after-upload scenario, network)
        self.notes: dict[str, str] = {}
        self.conda_excess: list[int] = []

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def groups(self) -> list[list[str]]:
        """Contenders measured together: a compared revision goes right beside its own."""
        out = []
        for contender in self.chosen:
            refs = [r for r in self.revisions if r.startswith(contender + " @ ")]
            out.append([*refs, contender])
        return out

    def target(self, prefix: str, scenario: str, subdirs: list[str]) -> Target:
        folder = self.work / "".join(c if c.isalnum() else "-" for c in scenario)
        return Target(f"s3://{BUCKET}/{prefix}", self.server_url, self.env, subdirs, folder)

    def measure(self, contender: str, target: Target, scenario: str, net: str | None = None) -> Run:
        """One run through the proxy of network profile `net` (None: straight to the server)."""
        proxy = self.proxies[net] if net else None
        if proxy is not None:
            target = replace(target, endpoint=proxy.url)
        where = net or "direct"
        self.log(f"{scenario} [{where}]: {contender} ...")
        load = os.getloadavg()[0]  # other work on the machine, for the record
        run = contenders.run(contender, target, scenario, proxy, self.revisions.get(contender))
        self.log(
            f"{scenario} [{where}]: {contender}: {run.wall_s:.1f} s, "
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

    def measure_median(self, contender: str, target: Target, scenario: str, net: str) -> Run:
        """The run of median wall time out of `repeat` (the state must not change)."""
        runs = [self.measure(contender, target, scenario, net) for _ in range(self.profile.repeat)]
        return self.keep_median(runs)[0]

    def keep_median(self, runs: list[Run]) -> list[Run]:
        """Of repeated runs (same scenario, contender, network), keep the median one."""
        by: dict[tuple, list[Run]] = {}
        for r in runs:
            by.setdefault((r.scenario, r.contender, r.network), []).append(r)
        kept = []
        for same in by.values():
            if len(same) > 1:
                for r in same:
                    self.runs.remove(r)
                best = sorted(same, key=lambda r: r.wall_s)[len(same) // 2]
                best.samples = [r.wall_s for r in same]  # in run order (rounds)
                best.note = f"median of {len(same)}: " + ", ".join(
                    f"{r.wall_s:.2f} s (load {r.load:.1f})" for r in same
                )
                self.runs.append(best)
                kept.append(best)
            else:
                kept.append(same[0])
        return kept

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
        warm_too = "warm-new" in p.scenarios
        for net in self.networks:
            self.floor(cold_name, self.target(prefix, cold_name, subdirs), artifacts, net)
        listed: set[str] = set()
        for group in self.groups():
            runs = []
            for order, net in self.rounds_of(group):
                for contender in order:
                    target = self.target(prefix, cold_name, subdirs)
                    run = self.measure(contender, target, cold_name, net)
                    runs.append(run)
                    self.check_conda_bytes(run, prefix, artifacts)
                    if warm_too:  # the warm run follows the contender's own cold one
                        added = self.upload(prefix, new)
                        warm = self.target(prefix, warm_name, subdirs)
                        warm.work = target.work  # conda-index keeps its local copy
                        if net not in listed:
                            self.floor(warm_name, warm, added, net)
                            listed.add(net)
                        runs.append(self.measure(contender, warm, warm_name, net))
                        channel.delete(self.s3, BUCKET, prefix, added)
                    self.reset(prefix, artifacts)
                    shutil.rmtree(target.work / "conda-index", ignore_errors=True)
            self.keep_median(runs)

    def rounds_of(self, group: list[str]) -> list[tuple[list[str], str]]:
        """(contenders in order, network) for each cold measurement of a group.

        A compared pair is measured `rounds` times, alternating which goes first
        (ref, head / head, ref), on every network in each round, so drift of the
        machine's load falls on both alike; a single contender once per network.
        """
        rounds = self.rounds if len(group) > 1 else 1
        return [
            (group if i % 2 == 0 else group[::-1], net)
            for i in range(rounds)
            for net in self.networks
        ]

    def cold(
        self, name: str, prefix: str, subdirs: list[str], artifacts: dict, to_read: dict
    ) -> None:
        target = self.target(prefix, name, subdirs)
        for net in self.networks:
            self.floor(name, target, to_read, net)
        for group in self.groups():
            runs = []
            for order, net in self.rounds_of(group):
                for contender in order:
                    run = self.measure(contender, target, name, net)
                    runs.append(run)
                    self.check_conda_bytes(run, prefix, artifacts)
                    self.reset(prefix, artifacts)
                    shutil.rmtree(target.work / "conda-index", ignore_errors=True)
            self.keep_median(runs)

    def floor(self, name: str, target: Target, to_read: dict, net: str) -> Run:
        """The least any tool must read: one bare listing plus the info of what is new."""
        run = self.measure(LISTING, target, name, net)
        self.floors[name] = run.tally["list_bytes"] + sum(info for _, info in to_read.values())
        return run

    def check_conda_bytes(self, run: Run, prefix: str, artifacts: dict) -> None:
        """Bytes read per `.conda` beyond its info member, in range-read mode."""
        if run.contender != OURS_RANGE or run.network != self.networks[0]:
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

    def after_upload(self) -> None:
        """Issue 15's shape: a small indexed channel, then a few new artifacts, each warm.

        Each contender indexes the channel once (set-up, straight to the server), then on
        each network: the new artifacts are uploaded, the measured warm run indexes them,
        they are deleted and an unmeasured run brings the contender's state back.
        """
        p, prefix = self.profile, "upload/"
        shape = dict(
            median=p.upload_median,
            sigma=0.3,
            cap=4 * p.upload_median,
            tar_bz2_share=0.4,
            subdirs=("linux-64", "noarch"),
            weights=(0.5, 0.5),
        )
        base = specs(p.upload_base, seed=7, **shape)
        artifacts = self.upload(prefix, base)
        subdirs = ["linux-64", "noarch"]
        setup = f"{p.upload_base:,} for after upload (set-up; direct, not counted)"
        batches = [
            (
                f"after upload +{n} ({p.upload_base:,} indexed, warm)",
                specs(n, seed=8 + i, name_prefix=f"new{i}", **shape),
            )
            for i, n in enumerate(p.upload_new)
        ]
        for contender in [c for group in self.groups() for c in group]:
            target = self.target(prefix, batches[0][0], subdirs)
            self.measure(contender, target, setup)
            for name, new in batches:  # one work folder: conda-index keeps its copy
                for net in self.networks:
                    added = self.upload(prefix, new)
                    if (name, net) not in self.upload_floors:
                        self.floor(name, target, added, net)
                        self.upload_floors.add((name, net))
                    self.measure(contender, target, name, net)
                    channel.delete(self.s3, BUCKET, prefix, added)
                    self.runs.remove(self.measure(contender, target, name + " (undo)"))
            self.reset(prefix, artifacts)
            shutil.rmtree(target.work / "conda-index", ignore_errors=True)
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
        warm_target = self.target(prefix, warm_name, subdirs)
        for net in self.networks:
            self.measure_median(LISTING, warm_target, warm_name, net)
            self.measure_median(LISTING_PLAIN, warm_target, warm_name, net)
        ours = [c for c in (OURS_RANGE, OURS_SHARDS) if c in self.chosen]
        others = [c for c in self.chosen if c not in ours]
        if self.revisions:
            self.notes["wide-revisions"] = "compared revisions are not run in the wide scenario"
        for contender in ours:  # the cache carries over: the second mode's cold run only
            target = self.target(prefix, cold_name, subdirs)  # adds checksums
            run = self.measure(contender, target, cold_name)
            if contender != ours[0]:
                run.note = f"after {ours[0]}: reads only checksums, renders shards"
            for net in self.networks:
                self.measure_median(contender, warm_target, warm_name, net)
        if ours:
            self.reset(prefix, artifacts)
        for contender in others:
            if contender == CONDA_INDEX and p.wide > 20_000:
                self.notes["wide-conda-index"] = (
                    f"conda-index not run at {p.wide:,}: its cold set-up alone (download "
                    "and index every artifact) would take longer than the rest of the run"
                )
                continue
            target = self.target(prefix, cold_name, subdirs)
            self.measure(contender, target, cold_name)
            warm = self.target(prefix, warm_name, subdirs)
            warm.work = target.work
            for net in self.networks:
                self.measure_median(contender, warm, warm_name, net)
            self.reset(prefix, artifacts)
            shutil.rmtree(target.work / "conda-index", ignore_errors=True)


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def _dependencies(pyproject: str) -> list[str]:
    return sorted(tomllib.loads(pyproject).get("project", {}).get("dependencies", []))


def checkout_ref(ref: str, work: Path) -> Revision:
    """REF checked out beside the tree (a detached git worktree), ready to run.

    It runs on the current venv when its `[project] dependencies` are the same as
    the tree's (PYTHONPATH and the working directory point at the checkout); else
    it gets a venv of its own (`python -m venv` + `pip install -e`).
    """
    sha = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    short = sha[:7]
    checkout = work / f"ref-{sha[:12]}"
    if (checkout / ".git").exists() and _git("-C", str(checkout), "rev-parse", "HEAD") == sha:
        pass  # left by an earlier run: reuse it
    else:
        shutil.rmtree(checkout, ignore_errors=True)
        _git("worktree", "prune")
        _git("worktree", "add", "--detach", str(checkout), sha)
    python = sys.executable
    theirs = _git("show", f"{sha}:pyproject.toml")
    if _dependencies(theirs) != _dependencies((ROOT / "pyproject.toml").read_text()):
        venv = checkout / ".venv"
        python = str(venv / "bin" / "python")
        if not Path(python).exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [python, "-m", "pip", "install", "--quiet", "-e", str(checkout)], check=True
            )
    found = subprocess.run(  # what `python -m indexer` will import there, checked once
        [python, "-c", "import indexer; print(indexer.__file__)"],
        cwd=checkout,
        env={**os.environ, "PYTHONPATH": str(checkout)},
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not Path(found).resolve().is_relative_to(checkout.resolve()):
        raise RuntimeError(f"{ref}: `indexer` comes from {found}, not from {checkout}")
    label = short if sha.startswith(ref) else f"{ref} ({short})"
    return Revision(label, checkout, python)


def head_label() -> str:
    """The current tree's commit, `+changes` when files outside benchmarks/ differ from it."""
    changed = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks")
    return _git("rev-parse", "--short=7", "HEAD") + ("+changes" if changed else "")


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
        "--network",
        default=",".join(NETWORKS),
        help="comma-separated network profiles, each run on every one: "
        + "; ".join(n.describe() for n in NETWORKS.values()),
    )
    parser.add_argument(
        "--compare-ref",
        metavar="REF",
        help="also run our contenders at git REF (checked out in the work folder), "
        "alternating with the current tree, cold, and print both with their ratio",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="measurements of each compared pair (median kept; default: the profile's repeat)",
    )
    parser.add_argument(
        "--cold-large",
        type=int,
        metavar="N",
        help="artifacts in the large cold channel (default: the profile's, 10,000 in full)",
    )
    parser.add_argument(
        "--upload-base",
        type=int,
        metavar="N",
        help="artifacts indexed before the after-upload scenario's new ones "
        "(default: the profile's, 10,000 in full)",
    )
    parser.add_argument(
        "--work", type=Path, default=WORK, help="work folder (default benchmarks/work)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the server's data afterwards")
    args = parser.parse_args(argv)
    unknown = set(args.network.split(",")) - set(NETWORKS)
    if unknown:
        parser.error(f"unknown network profile(s): {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    SeaweedServer = dev_module("seaweed").SeaweedServer

    args = parse(sys.argv[1:] if argv is None else argv)
    profile = PROFILES["smoke" if args.smoke else "quick" if args.quick else "full"]
    if args.scenarios:
        profile = replace(profile, scenarios=tuple(args.scenarios.split(",")))
    if args.upload_base:
        profile = replace(profile, upload_base=args.upload_base)
    if args.cold_large:
        n = args.cold_large
        profile = replace(profile, cold_large=n, cold_small=min(profile.cold_small, n))
    chosen = [contenders.SHORT[c] for c in args.contenders.split(",")]
    networks = args.network.split(",")
    work = args.work.resolve()
    revisions: dict[str, Revision] = {}
    labels = {"head": head_label()}
    if args.compare_ref:
        revision = checkout_ref(args.compare_ref, work)
        labels["ref"] = revision.label
        for contender in chosen:
            if contender in (OURS_RANGE, OURS_SHARDS):
                revisions[f"{contender} @ {revision.label}"] = revision
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
        with contextlib.ExitStack() as stack:
            proxies = {
                net: stack.enter_context(CountingProxy(server.endpoint_url, NETWORKS[net]))
                for net in networks
            }
            bench = Bench(
                profile,
                chosen,
                work / "runs",
                s3,
                env,
                proxies,
                server.endpoint_url,
                revisions,
                args.rounds or profile.repeat,
            )
            if {"cold-small", "cold-large", "warm-new"} & set(profile.scenarios):
                bench.main_channel()
            if "big" in profile.scenarios:
                bench.big()
            if "after-upload" in profile.scenarios:
                bench.after_upload()
            if "wide" in profile.scenarios:
                bench.wide()
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work / "seaweed", ignore_errors=True)
    summary = table.summary(bench.runs, bench.floors, bench.conda_excess, networks)
    results = {
        "profile": profile.name,
        "command": " ".join(
            ["python -m benchmarks.run", *(argv if argv is not None else sys.argv[1:])]
        ),
        "commit": labels,
        "networks": {net: NETWORKS[net].describe() for net in networks},
        "duration_s": time.monotonic() - started,
        "runs": [r.as_dict() for r in bench.runs],
        "floors": bench.floors,
        "conda_excess": summary["conda_excess"],
        "notes": bench.notes,
    }
    (work / "results.json").write_text(json.dumps(results, indent=1))
    notes = "".join(f"\n- {note}" for note in bench.notes.values())
    header = f"commit {labels['head']}; networks: " + "; ".join(results["networks"].values())
    markdown = header + "\n\n" + table.markdown(bench.runs, bench.floors, networks) + notes
    if revisions:
        markdown += "\n\n" + table.comparison(bench.runs, list(revisions), labels["head"])
    markdown += "\n\n" + summary["text"]
    (work / "results.md").write_text(markdown + "\n")
    print(markdown)
    print(f"\ntotal {results['duration_s'] / 60:.1f} min; results in {work}/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
