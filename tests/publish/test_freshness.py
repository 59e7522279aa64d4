"""Unit tests of the one 'already published?' mechanism (`publish.freshness`)."""

from __future__ import annotations

from indexer.config import Config
from indexer.model import Entry
from indexer.publish import freshness

CONFIG = Config(shards=True)
ARTIFACTS = [Entry("a-1-0.conda", 10, "t1"), Entry("b-1-0.tar.bz2", 20, "t2")]
STATES = {e.name: (e.size, e.token) for e in ARTIFACTS}


def listing(tokens: dict[str, str]) -> list[Entry]:
    return [*ARTIFACTS, *(Entry(name, 1, token) for name, token in tokens.items())]


def test_stamp_changes_with_any_input() -> None:
    stamp = freshness.stamp("noarch", STATES, CONFIG, [])
    assert stamp == freshness.stamp("noarch", dict(reversed(STATES.items())), CONFIG, [])
    assert stamp != freshness.stamp("noarch", {**STATES, "a-1-0.conda": (10, "t9")}, CONFIG, [])
    assert stamp != freshness.stamp("noarch", STATES, Config(shards=False), [])
    assert stamp != freshness.stamp("noarch", STATES, CONFIG, ["repodata.json\tx"])


def test_inputs_name_the_channel_patch_file_and_repodata_by_token() -> None:
    found = freshness.inputs(
        "noarch", listing({"patch_instructions.json": "p1", "repodata.json": "r1"}), CONFIG
    )
    assert found == ["patch_instructions.json\tp1", "repodata.json\tr1"]
    assert freshness.inputs("noarch", ARTIFACTS, Config(shards=True, repodata=True)) == []


def test_ours_only_while_the_listed_object_is_the_one_we_wrote() -> None:
    published = {"noarch/run_exports.json": ("tok", "digest")}
    path = "noarch/run_exports.json"
    assert freshness.ours(published, path, Entry("run_exports.json", 1, "tok")) == "digest"
    assert freshness.ours(published, path, Entry("run_exports.json", 1, "other")) is None
    assert freshness.ours(published, path, None) is None


def test_as_published_needs_the_same_stamp_and_every_output_ours() -> None:
    paths = freshness.output_paths("noarch", CONFIG)
    assert paths[-1] == "noarch/repodata_shards.msgpack.zst"
    published = {p: (f"tok-{i}", "d") for i, p in enumerate(paths)}
    listed = {p: Entry(p.split("/")[1], 1, f"tok-{i}") for i, p in enumerate(paths)}
    assert freshness.as_published("s", published, listed, "s", paths)
    assert not freshness.as_published("other", published, listed, "s", paths)
    listed[paths[0]] = Entry("run_exports.json", 1, "replaced")
    assert not freshness.as_published("s", published, listed, "s", paths)


def test_a_settled_summary_matches_the_listing_it_describes() -> None:
    tokens = {"run_exports.json": "o1", "run_exports.json.zst": "o2"}
    stamp = freshness.stamp("noarch", STATES, Config(), [])
    published = {f"noarch/{n}": (t, "d") for n, t in tokens.items()}
    paths = freshness.output_paths("noarch", Config())
    settled = freshness.settled_summary(stamp, published, paths, [("x", "bad")], [])
    assert settled is not None
    again = freshness.Settled.from_bytes(settled.to_bytes())
    assert again == settled
    assert freshness.settled_matches(again, "noarch", listing(tokens), Config())
    assert not freshness.settled_matches(
        again, "noarch", listing({**tokens, "run_exports.json": "o3"}), Config()
    )
    assert freshness.settled_summary(stamp, {}, paths, [], []) is None
