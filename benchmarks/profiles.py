"""How big each scenario is: the full set (`make bench`), --quick and --smoke.

Sizes are scaled to fit this machine (2 cores, ~80 GB free disk, a run well
under an hour); benchmarks/RESULTS.md says what was scaled and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from .gen import MIB

SCENARIOS = ("cold-small", "cold-large", "warm-new", "big", "wide", "after-upload")


@dataclass(frozen=True)
class Profile:
    """The sizes of one benchmark run."""

    name: str
    cold_small: int  # artifacts in the first cold channel
    cold_large: int  # artifacts in the second (a superset of the first)
    median: int  # payload bytes, log-normal median
    sigma: float  # log-normal shape
    cap: int  # largest drawn size (the `huge` ones come on top)
    huge: tuple[int, ...]  # a few very large artifacts, in the first channel
    new_share: float  # warm run: this share of cold_large is new
    wide: int  # warm, nothing new: listed objects
    wide_payload: int  # payload bytes of each of those (tiny: the listing is measured)
    big: int  # the one very large artifact (memory)
    repeat: int  # runs of the short warm measurements (median reported)
    scenarios: tuple[str, ...] = SCENARIOS
    # after-upload (issue 15's shape): an indexed channel, then each count of new
    # artifacts in turn, every contender warm from its own previous run
    upload_base: int = 200
    upload_new: tuple[int, ...] = (10,)
    upload_median: int = 1_500_000  # bytes; 40% .tar.bz2, two subdirs


FULL = Profile(
    name="full",
    cold_small=2_000,
    cold_large=10_000,
    median=1 * MIB,
    sigma=1.0,
    cap=64 * MIB,
    huge=(150 * MIB, 250 * MIB, 400 * MIB),
    new_share=0.01,
    wide=100_000,
    wide_payload=512,
    big=2 * 1024 * MIB,
    repeat=3,
    upload_base=10_000,
    upload_new=(10, 100),
)

QUICK = Profile(
    name="quick",
    cold_small=60,
    cold_large=200,
    median=256 * 1024,
    sigma=1.0,
    cap=8 * MIB,
    huge=(24 * MIB,),
    new_share=0.05,
    wide=3_000,
    wide_payload=512,
    big=128 * MIB,
    repeat=2,
)

SMOKE = Profile(
    name="smoke",
    cold_small=12,
    cold_large=24,
    median=64 * 1024,
    sigma=0.5,
    cap=1 * MIB,
    huge=(),
    new_share=0.1,
    wide=50,
    wide_payload=256,
    big=4 * MIB,
    repeat=1,
    scenarios=("cold-small", "warm-new"),
    upload_base=20,
    upload_new=(2,),
    upload_median=64 * 1024,
)

PROFILES = {p.name: p for p in (FULL, QUICK, SMOKE)}
