"""Publishing weights to the Hub (``sr.publish.publish`` and ``python -m sr publish``), against the
loopback fake Hub of tests/hubserver.py. Nothing here leaves 127.0.0.1."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, make_tiny_zoo
from hubserver import fake_hub, hub_env  # noqa: F401
from sr import publish as pub
from sr import zoo

MID = "srgan"


@pytest.fixture
def local_zoo(hub_env, tmp_path, monkeypatch):
    """A tiny zoo with local weights (what training + export leave behind), Hub = fake Hub."""
    reg, weights = make_tiny_zoo(tmp_path / "zoo", ids=(MID,))
    monkeypatch.setenv("SR_REGISTRY", str(reg))
    monkeypatch.setenv("SR_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("SR_HUB_PROBE_TIMEOUT", "0.5")
    monkeypatch.delenv("SR_HUB_ORG", raising=False)
    zoo.reload_registry()
    pub.write_card(MID)  # export() writes the card next to the weights
    yield hub_env, reg, weights
    zoo.reload_registry()
    zoo.reset_hub_probe()
    zoo.clear_shared()


def _redownload(monkeypatch, tmp_path, mid: str) -> Path:
    """Resolve ``mid`` from the Hub only: no local weights, a fresh cache."""
    from huggingface_hub import constants

    empty = tmp_path / "fresh_weights"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("SR_WEIGHTS_DIR", str(empty))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "fresh_cache"))
    zoo.reload_registry()
    zoo.reset_hub_probe()
    zoo.clear_shared()
    return zoo.resolve(mid)


def test_publish_uploads_pins_the_commit_and_round_trips(local_zoo, tmp_path, monkeypatch):
    hub, reg, weights = local_zoo
    sha = zoo.get_entry(MID).sha256
    rev = pub.publish(MID, "my-lab/srgan-test", token="x")

    # the server got a new repo with exactly the three files, through the LFS basic path (no xet)
    assert rev == hub.head("my-lab/srgan-test")
    files = hub.files("my-lab/srgan-test", rev)
    assert set(files) == {".gitattributes", "config.json", "model.safetensors", "README.md"}
    for name in ("config.json", "model.safetensors", "README.md"):
        assert files[name] == (weights / MID / name).read_bytes()
    assert files["README.md"].decode() == pub.render_card(zoo.get_entry(MID))
    assert hub.count("POST", "/api/repos/create") == 1
    assert hub.count("PUT", "/__lfs/upload/*") == 1  # the weights; config + card are regular files
    assert hub.count(path="*xet*") == 0
    commit = hub.seen("POST", "/api/models/my-lab/srgan-test/commit/main")
    assert len(commit) == 1 and commit[0].headers["authorization"] == "Bearer x"
    assert hub.history("my-lab/srgan-test")[0].message == f"{MID}: weights sha256 {sha[:12]}"

    # the (temporary) registry pins the commit and the new repo; nothing else changed
    doc = {m["id"]: m for m in json.loads(reg.read_text())["models"]}
    assert doc[MID]["revision"] == rev and doc[MID]["repo"] == "my-lab/srgan-test" and doc[MID]["sha256"] == sha
    entry = zoo.get_entry(MID)
    assert entry.revision == rev and entry.repo_id == "my-lab/srgan-test"

    # a fresh download of the pinned revision is the very file that was published
    hub.reset_log()
    folder = _redownload(monkeypatch, tmp_path, MID)
    assert folder.name == rev and zoo.sha256_file(folder / "model.safetensors") == sha
    assert hub.count("GET", f"/my-lab/srgan-test/resolve/{rev}/model.safetensors") == 1
    assert not zoo.load(MID).training


def test_publish_to_the_registry_repo_twice_is_idempotent(local_zoo):
    hub, reg, _ = local_zoo
    rev = pub.publish(MID, token="x")  # default repo: hub_org_default/<repo> of the registry
    assert hub.head("test-org/srgan-hpa-x4") == rev and zoo.get_entry(MID).revision == rev
    doc = {m["id"]: m for m in json.loads(reg.read_text())["models"]}
    assert doc[MID]["repo"] == "srgan-hpa-x4"  # the registry's own repo: not rewritten
    assert pub.publish(MID, token="x") == rev  # no change: no empty commit, same pin
    assert len(hub.history("test-org/srgan-hpa-x4")) == 2  # .gitattributes + the weights


def test_publish_refuses_weights_that_do_not_match_the_pin(local_zoo):
    hub, _, weights = local_zoo
    f = weights / MID / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-1] + b"\0")
    with pytest.raises(zoo.ZooError, match="checksum mismatch"):
        pub.publish(MID, "my-lab/x", token="x")
    assert hub.count() == 0 and zoo.get_entry(MID).revision is None


def test_publish_without_local_weights_does_not_touch_the_hub(local_zoo, tmp_path, monkeypatch):
    hub, _, _ = local_zoo
    monkeypatch.setenv("SR_WEIGHTS_DIR", str(tmp_path / "nothing"))
    with pytest.raises(zoo.ZooError, match="nothing to publish"):
        pub.publish(MID, "my-lab/x", token="x")
    assert hub.count() == 0 and zoo.get_entry(MID).revision is None


@pytest.mark.parametrize("case", ["bad-token", "commit-500"])
def test_publish_failures_leave_the_registry_alone(local_zoo, case):
    hub, reg, _ = local_zoo
    before = reg.read_text()
    if case == "bad-token":
        hub.tokens = {"the-right-token"}
        match = "401"
    else:
        hub.fail(500, path="/api/models/*/commit/*", times=None)
        match = "500"
    with pytest.raises(zoo.ZooError, match=f"publishing {MID!r} to my-lab/x at http://127.0.0.1:.* failed .*{match}"):
        pub.publish(MID, "my-lab/x", token="wrong" if case == "bad-token" else "x")
    assert reg.read_text() == before


def _cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sr", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


def test_cli_publish_in_a_subprocess(local_zoo, tmp_path):
    hub, reg, weights = local_zoo
    env = {**os.environ, **hub.client_env(tmp_path / "sub"), "SR_REGISTRY": str(reg),
           "SR_WEIGHTS_DIR": str(weights)}
    r = _cli(["publish", MID, "--repo", "cli-org/srgan-cli", "--token", "x"], env)
    assert r.returncode == 0, r.stderr
    rev = hub.head("cli-org/srgan-cli")
    assert r.stdout.strip() == f"published {MID} -> cli-org/srgan-cli at revision {rev}"
    doc = {m["id"]: m for m in json.loads(reg.read_text())["models"]}
    assert doc[MID]["revision"] == rev and doc[MID]["repo"] == "cli-org/srgan-cli"
    assert hub.file("cli-org/srgan-cli", "model.safetensors", rev) == (weights / MID / "model.safetensors").read_bytes()



def test_cli_publish_failure_is_one_error_line(local_zoo, capsys):
    from sr.cli import main

    hub, reg, _ = local_zoo
    hub.tokens = {"the-right-token"}
    assert main(["publish", MID, "--repo", "cli-org/other", "--token", "wrong"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: publishing 'srgan' to cli-org/other at http://127.0.0.1:") and "401" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not hub.has_repo("cli-org/other")
