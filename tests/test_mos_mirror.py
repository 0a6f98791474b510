"""Mirroring the MOS votes CSV to a Hub dataset repo (CommitScheduler) against the loopback fake Hub."""
import pytest

from hubserver import closed_port_endpoint, fake_hub, hub_env  # noqa: F401
from sr.mos import store
from sr.mos.store import VoteStore, get_store, read_votes, start_mirror

REPO_ID = "fake-user/mos-votes"


def row(i):
    return {"timestamp_utc": "2026-01-02T03:04:05.678Z", "rater_id": "r", "item_id": f"it{i}", "image_id": "img001",
            "method": "bicubic", "score": 1 + i % 5, "seconds": "2.000", "app_version": "t"}


@pytest.fixture
def clean_mirrors():
    yield
    for key, sched in list(store._mirrors.items()):
        sched.stop()
        store._stores.pop(key, None)
    store._mirrors.clear()


def test_votes_mirrored_without_half_rows_or_pool(hub_env, tmp_path, clean_mirrors):
    data = tmp_path / "data"
    (data / "mos_pool").mkdir(parents=True)
    (data / "mos_pool" / "manifest.json").write_text("{}")  # the answer key must never be uploaded
    votes = data / "mos_votes.csv"
    sched = start_mirror(votes, REPO_ID, every=60, token="hf_test_token")
    assert sched is not None and start_mirror(votes, REPO_ID, every=60, token="x") is sched
    st = get_store(votes)
    assert st.extra_lock is sched.lock  # appends and the upload snapshot exclude each other
    for i in range(3):
        st.append(row(i))
    sched.trigger().result(timeout=60)
    files = hub_env.files(REPO_ID, repo_type="dataset")
    csvs = [p for p in files if p.endswith(".csv")]
    assert len(csvs) == 1 and csvs[0].startswith("votes/") and csvs[0].endswith("/mos_votes.csv")
    assert files[csvs[0]] == votes.read_bytes()
    assert not [p for p in files if "manifest" in p or p.endswith(".lock")]
    assert hub_env.create_repo(REPO_ID, repo_type="dataset").private  # votes are private by default
    st.append(row(3))
    sched.trigger().result(timeout=60)
    files = hub_env.files(REPO_ID, repo_type="dataset")
    assert files[csvs[0]] == votes.read_bytes() and files[csvs[0]].count(b"\n") == 5

    # a restarted process (fresh disk on a Space) mirrors into a new folder: nothing is overwritten
    sched.stop()
    store._mirrors.clear()
    store._stores.clear()
    votes.unlink()
    sched2 = start_mirror(votes, REPO_ID, every=60, token="hf_test_token")
    get_store(votes).append(row(9))
    sched2.trigger().result(timeout=60)
    files = hub_env.files(REPO_ID, repo_type="dataset")
    csvs2 = sorted(p for p in files if p.endswith(".csv"))
    assert len(csvs2) == 2 and files[csvs[0]].count(b"\n") == 5
    snap = tmp_path / "snapshot"
    for p in csvs2:
        (snap / p).parent.mkdir(parents=True, exist_ok=True)
        (snap / p).write_bytes(files[p])
    assert sorted(v.item_id for v in read_votes(snap).votes) == ["it0", "it1", "it2", "it3", "it9"]


def test_unreachable_hub_does_not_stop_voting(tmp_path, monkeypatch, clean_mirrors):
    monkeypatch.setenv("HF_ENDPOINT", closed_port_endpoint())
    votes = tmp_path / "v.csv"
    assert start_mirror(votes, REPO_ID, every=60, token="hf_test_token") is None
    VoteStore(votes).append(row(0))
    assert len(read_votes(votes).votes) == 1
    assert start_mirror(votes, None) is None  # not configured: nothing happens


def test_study_starts_the_mirror_from_its_config(hub_env, tmp_path, monkeypatch, clean_mirrors):
    from sr.mos.config import MosConfig
    from sr.mos.session import Study

    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setenv("SR_MOS_HF_REPO", REPO_ID)
    monkeypatch.setenv("SR_MOS_HF_EVERY", "60")
    cfg = MosConfig.from_env(pool=tmp_path / "pool", votes=tmp_path / "d" / "votes.csv")
    assert cfg.hf_repo == REPO_ID and cfg.hf_every == 60
    study = Study(cfg)
    study.ensure_mirror()
    study.ensure_mirror()
    sched = store._mirrors[str(cfg.votes.resolve())]
    assert study.store.extra_lock is sched.lock and hub_env.has_repo(REPO_ID, repo_type="dataset")
