"""Weights resolution through the Hub, against a loopback fake Hub (tests/hubserver.py).

Nothing here leaves 127.0.0.1. Every test gets its own server, Hub cache, registry and weights
folder; the registry pins the commit that the fake Hub returned for the uploaded weights.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import make_tiny_zoo
from hubserver import closed_port_endpoint, fake_hub, hub_env, silent_endpoint  # noqa: F401
from sr import zoo

IDS = ("srgan", "srgan-improved")
PROBE_TIMEOUT = 0.5  # SR_HUB_PROBE_TIMEOUT; hf_hub_download's etag timeout is 3x this


@pytest.fixture
def hz(hub_env, tmp_path, monkeypatch):
    """A tiny zoo whose weights live only on the fake Hub, pinned to the uploaded commits."""
    hub = hub_env
    reg, src = make_tiny_zoo(tmp_path / "zoo", ids=IDS)
    empty = tmp_path / "no_weights"
    empty.mkdir()
    monkeypatch.setenv("SR_REGISTRY", str(reg))
    monkeypatch.setenv("SR_WEIGHTS_DIR", str(empty))
    monkeypatch.setenv("SR_HUB_PROBE_TIMEOUT", str(PROBE_TIMEOUT))
    monkeypatch.delenv("SR_HUB_ORG", raising=False)
    zoo.reload_registry()
    revs = {}
    for mid in IDS:
        e = zoo.get_entry(mid)
        revs[mid] = hub.upload_folder(e.repo_id, src / mid, patterns=("config.json", "model.safetensors"))
        zoo.update_entry(mid, revision=revs[mid])
    zoo.reset_hub_probe()
    zoo.clear_shared()
    hub.reset_log()
    yield SimpleNamespace(hub=hub, reg=reg, src=src, empty=empty, revs=revs,
                          cache=Path(tmp_path / "hf_home" / "hub"))
    zoo.reload_registry()
    zoo.reset_hub_probe()
    zoo.clear_shared()


def _original_state(src: Path, mid: str) -> dict:
    from sr.arch import Generator

    return Generator.from_pretrained(str(src / mid)).state_dict()


def _no_partial_download(hz, mid: str) -> None:
    """Nothing of the weights is left in the cache: no snapshot entry, no blob, no .incomplete."""
    folder = hz.cache / f"models--{zoo.get_entry(mid).repo_id.replace('/', '--')}"
    snaps = list(folder.glob("snapshots/*/model.safetensors"))  # (.no_exist/ markers are fine)
    assert not snaps, "a weights snapshot entry stayed in the cache"
    assert not list(folder.rglob("*.incomplete")), "a partial download stayed in the cache"
    pin = zoo.get_entry(mid).sha256
    blobs = [p for p in (folder / "blobs").glob("*")] if (folder / "blobs").exists() else []
    big = [p for p in blobs if p.stat().st_size > 1000]  # config.json is ~200 bytes, weights ~14-29 kB
    assert not big, f"weights-sized blobs stayed in the cache: {big} (pin {pin[:12]})"


def _assert_clear_error(err: zoo.ZooError, mid: str) -> None:
    msg = str(err)
    assert repr(mid) in msg, msg
    assert "put config.json and model.safetensors" in msg and "HF_ENDPOINT=" in msg, msg


# ---------------------------------------------------------------------------------- success

def test_download_resolves_verifies_and_loads_the_pinned_revision(hz):
    hub, rev = hz.hub, hz.revs["srgan"]
    model = zoo.load("srgan")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.zoo_entry.revision == rev
    want = _original_state(hz.src, "srgan")
    got = model.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    # the pinned commit is what was asked for, never a branch
    assert hub.count("HEAD", f"/test-org/srgan-hpa-x4/resolve/{rev}/model.safetensors") >= 1
    assert hub.count("GET", f"/test-org/srgan-hpa-x4/resolve/{rev}/model.safetensors") == 1
    assert hub.count("GET", f"/test-org/srgan-hpa-x4/resolve/{rev}/config.json") == 1
    assert hub.count(path="*/resolve/main/*") == 0
    assert hub.count("HEAD", "/api/models") == 1  # the one reachability probe
    folder = zoo.resolve("srgan")
    assert folder == hz.cache / "models--test-org--srgan-hpa-x4" / "snapshots" / rev
    assert zoo.sha256_file(folder / "model.safetensors") == zoo.get_entry("srgan").sha256

    # a second resolution of a pinned commit is served from the cache: no request at all
    hub.reset_log()
    zoo.clear_shared()
    assert zoo.shared("srgan") is zoo.shared("srgan")
    assert hub.count() == 0


def test_local_weights_with_matching_sha_use_no_network(hz, monkeypatch):
    monkeypatch.setenv("SR_WEIGHTS_DIR", str(hz.src))
    model = zoo.load("srgan-improved")
    assert not model.training
    assert zoo.resolve("srgan-improved") == hz.src / "srgan-improved"
    assert hz.hub.count() == 0  # not even the probe
    assert zoo._probe_results == {}


def test_slow_but_in_time_answers_are_fine(hz):
    hz.hub.delay(0.3, path="*/model.safetensors", method="HEAD")  # under the 1.5 s etag timeout
    assert zoo.load("srgan-improved").zoo_entry.id == "srgan-improved"


def test_connection_dropped_mid_body_is_retried(hz):
    hz.hub.truncate(path="*/model.safetensors", mode="drop", times=1)
    model = zoo.load("srgan")
    want = _original_state(hz.src, "srgan")
    assert all(torch.equal(model.state_dict()[k], want[k]) for k in want)
    # retried once (with a Range header when some bytes had been written; here restarted from 0)
    assert hz.hub.count("GET", "*/model.safetensors") == 2


def test_lfs_files_redirected_to_a_cdn_host(hub_env, tmp_path, monkeypatch):
    """The Hub's real shape for LFS files: 302 to another origin, metadata on the redirect."""
    import socket

    if "127.0.0.1" not in {a[4][0] for a in socket.getaddrinfo("localhost", None)}:
        pytest.skip("localhost does not resolve to 127.0.0.1 here")
    hub = hub_env
    hub.cdn_host = "localhost"
    reg, src = make_tiny_zoo(tmp_path / "zoo", ids=("srgan",))
    monkeypatch.setenv("SR_REGISTRY", str(reg))
    monkeypatch.setenv("SR_WEIGHTS_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("SR_HUB_PROBE_TIMEOUT", str(PROBE_TIMEOUT))
    zoo.reload_registry()
    rev = hub.upload_folder("test-org/srgan-hpa-x4", src / "srgan", patterns=("*.json", "*.safetensors"))
    zoo.update_entry("srgan", revision=rev)
    hub.reset_log()
    assert zoo.load("srgan").zoo_entry.revision == rev
    cdn = hub.seen("GET", "/__cdn/*")
    assert len(cdn) == 1 and "authorization" not in cdn[0].headers


# -------------------------------------------------------------------------------- corruption

def test_corrupted_download_is_rejected_and_not_kept(hz):
    hub = hz.hub
    hub.corrupt(path="*/model.safetensors")
    with pytest.raises(zoo.ZooError, match="checksum mismatch") as ei:
        zoo.load("srgan")
    assert "'srgan'" in str(ei.value) and "downloaded file" in str(ei.value)
    _no_partial_download(hz, "srgan")
    assert zoo._shared == {}

    hub.clear_faults()  # the server is fixed: the next try downloads again and succeeds
    model = zoo.load("srgan")
    assert model.zoo_entry.id == "srgan"
    assert hub.count("GET", "*/model.safetensors") == 2


# ------------------------------------------------------------------------------- unreachable

def test_closed_port_fails_fast_and_the_probe_is_cached(hz, monkeypatch):
    import httpx

    probes = []
    real_head = httpx.head
    monkeypatch.setattr(httpx, "head", lambda *a, **k: probes.append(a) or real_head(*a, **k))
    monkeypatch.setenv("HF_ENDPOINT", closed_port_endpoint())
    zoo.reset_hub_probe()
    t = time.perf_counter()
    with pytest.raises(zoo.ZooError, match="unreachable") as ei:
        zoo.load("srgan")
    first = time.perf_counter() - t
    _assert_clear_error(ei.value, "srgan")
    assert str(hz.empty / "srgan") in str(ei.value)
    t = time.perf_counter()
    with pytest.raises(zoo.ZooError, match="unreachable") as ei:
        zoo.load("srgan-improved")
    second = time.perf_counter() - t
    _assert_clear_error(ei.value, "srgan-improved")
    assert first < 3 and second < 0.5, (first, second)
    assert len(probes) == 1  # one probe per process and endpoint


def test_server_that_never_answers_costs_one_probe_timeout(hz, monkeypatch):
    with silent_endpoint() as endpoint:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        zoo.reset_hub_probe()
        t = time.perf_counter()
        with pytest.raises(zoo.ZooError, match="unreachable.*Timeout") as ei:
            zoo.resolve("srgan")
        first = time.perf_counter() - t
        _assert_clear_error(ei.value, "srgan")
        t = time.perf_counter()
        for mid in IDS:
            with pytest.raises(zoo.ZooError, match="unreachable"):
                zoo.resolve(mid)
        second = time.perf_counter() - t
    assert PROBE_TIMEOUT * 0.8 < first < PROBE_TIMEOUT + 2.5, first
    assert second < 0.5, second  # two more resolutions without waiting for the probe again


def test_hub_offline_env_needs_no_probe(hz, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(zoo.ZooError, match="HF_HUB_OFFLINE is set"):
        zoo.resolve("srgan")
    assert hz.hub.count() == 0


# ---------------------------------------------------------------------- server-side failures

def _break(hz, case: str) -> str:
    """Make the server (or the pin) fail in one way; returns a regex the ZooError must match."""
    hub, e = hz.hub, zoo.get_entry("srgan")
    if case == "repo-404":
        hub.delete_repo(e.repo_id)
        return "not found on the Hub.*RepositoryNotFoundError"
    if case == "revision-404":
        zoo.update_entry("srgan", revision="0123456789" * 4)
        return "not found on the Hub.*RevisionNotFoundError"
    if case == "file-404":
        zoo.update_entry("srgan", revision=hub.commit(e.repo_id, deletes=["model.safetensors"]))
        return "not found on the Hub.*EntryNotFoundError"
    if case == "500-head":
        hub.fail(500, path="*/model.safetensors", method="HEAD")
        return "download from .* failed .*500"
    if case == "503-everything":
        hub.fail(503, path="*/resolve/*")
        return "download from .* failed .*503"
    if case == "500-get":
        hub.fail(500, path="*/model.safetensors", method="GET")
        return "download from .* failed .*500"
    if case == "slow-head":
        hub.delay(30, path="*/model.safetensors", method="HEAD")
        return "download from .* failed .*Timeout"
    if case == "hang-up-head":
        hub.disconnect(path="*/model.safetensors", method="HEAD")
        return "download from .* failed"
    if case == "truncated-body":
        hub.truncate(path="*/model.safetensors", mode="short", keep=0.5)
        return "download from .* failed .*Consistency check failed"
    raise AssertionError(case)


CASES = ["repo-404", "revision-404", "file-404", "500-head", "503-everything", "500-get", "slow-head",
         "hang-up-head", "truncated-body"]


@pytest.mark.parametrize("case", CASES)
def test_hub_failures_give_a_clear_error_and_no_model(hz, case):
    pattern = _break(hz, case)
    t = time.perf_counter()
    with pytest.raises(zoo.ZooError, match=pattern) as ei:
        zoo.shared("srgan")
    elapsed = time.perf_counter() - t
    _assert_clear_error(ei.value, "srgan")
    assert elapsed < 3 * PROBE_TIMEOUT + 1.5, f"{case}: {elapsed:.1f}s"
    assert zoo._shared == {}
    _no_partial_download(hz, "srgan")
    # the failure is not sticky: with the server fixed, another model downloads fine
    hz.hub.clear_faults()
    assert zoo.load("srgan-improved").zoo_entry.id == "srgan-improved"


# --------------------------------------------------------------- files that do not fit the pin

def _republish(hz, mid: str, *, config: dict | None = None, state: dict | None = None) -> None:
    """Commit altered files for ``mid`` and pin them (sha256 of the new weights, new commit)."""
    from safetensors.torch import save_file

    folder = hz.src.parent / f"altered-{mid}"
    folder.mkdir()
    cfg = config if config is not None else json.loads((hz.src / mid / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(cfg))
    if state is not None:
        save_file(state, str(folder / "model.safetensors"))
    else:
        (folder / "model.safetensors").write_bytes((hz.src / mid / "model.safetensors").read_bytes())
    rev = hz.hub.upload_folder(zoo.get_entry(mid).repo_id, folder)
    zoo.update_entry(mid, revision=rev, sha256=zoo.sha256_file(folder / "model.safetensors"))


def test_config_that_is_not_the_registry_architecture_is_rejected(hz):
    arch = dict(zoo.get_entry("srgan").arch, width=16)
    _republish(hz, "srgan", config=arch)
    with pytest.raises(zoo.ZooError, match="config.json .* does not match the registry architecture"):
        zoo.load("srgan")


def test_weights_missing_a_key_are_rejected(hz):
    from safetensors.torch import load_file

    sd = load_file(str(hz.src / "srgan" / "model.safetensors"))
    sd.pop(sorted(sd)[0])
    _republish(hz, "srgan", state=sd)
    with pytest.raises(zoo.ZooError, match="weights do not match its architecture"):
        zoo.load("srgan")


def test_weights_of_another_shape_are_rejected(hz):
    from sr.arch import Generator

    other = Generator(**dict(zoo.get_entry("srgan").arch, width=12, up_width=12))
    _republish(hz, "srgan", state={k: v.contiguous() for k, v in other.state_dict().items()})
    with pytest.raises(zoo.ZooError, match="weights do not match its architecture"):
        zoo.load("srgan")


# ---------------------------------------------------- the fake Hub for other clients (contract)

def test_commit_scheduler_can_mirror_a_csv_to_a_dataset_repo(hub_env, tmp_path):
    """How e.g. MOS ratings can be mirrored: CommitScheduler + a dataset repo on the fake Hub."""
    from huggingface_hub import CommitScheduler, HfApi

    hub = hub_env
    folder = tmp_path / "mos"
    folder.mkdir()
    (folder / "ratings.csv").write_text("item,score\n")
    api = HfApi(endpoint=hub.endpoint, token="x")
    scheduler = CommitScheduler(repo_id="lab/mos-ratings", repo_type="dataset", folder_path=folder,
                                every=60, hf_api=api)
    try:
        with scheduler.lock:
            with open(folder / "ratings.csv", "a") as f:
                f.write("a1,4\n")
        scheduler.trigger().result()
    finally:
        scheduler.stop()
    assert hub.file("lab/mos-ratings", "ratings.csv", repo_type="dataset") == b"item,score\na1,4\n"
    # the scheduler also pushes once when it starts: 1 or 2 commits depending on timing
    assert 1 <= hub.count("POST", "/api/datasets/lab/mos-ratings/commit/main") <= 2
