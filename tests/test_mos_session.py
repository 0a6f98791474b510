"""MOS sessions: server-side vote validation, replay/forgery rejection, rate limit, expiry."""
import pytest

from sr.mos.config import MosConfig
from sr.mos.session import (ALREADY, BAD_SCORE, CLOSED, EXPIRED, NO_SESSION, NOT_SAVED, NOT_SERVED, Session,
                            Study, VoteRejected, parse_score)
from sr.mos.store import StoreError, read_votes
from test_mos_pool import shared_tiny_pool


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory):
    return shared_tiny_pool(tmp_path_factory)


@pytest.fixture
def study(pool_dir, tmp_path):
    return Study(MosConfig.from_env(pool=pool_dir, votes=tmp_path / "votes.csv", items=6, min_seconds=0,
                                    max_rejects=50, hf_repo=None, repeat=False))


def rows(study):
    p = study.cfg.votes
    return read_votes(p).votes if p.exists() else []


def test_full_session_records_each_item_once(study):
    s, cal = study.start()
    assert s.phase == "calibration" and cal[0].label == 1 and cal[1].label == 5
    assert cal[0].method == "nearest" and cal[1].method == "reference" and cal[0].image_id == cal[1].image_id
    seen = []
    while (item := study.next_item(s)) is not None:
        assert study.next_item(s) == item  # asking again shows the same item: no skipping
        study.vote(s, item, 1 + len(seen) % 5)
        seen.append(item)
    assert s.phase == "done" and len(seen) == len(set(seen)) == 6 and [s.item_of(p) for p in seen] == s.plan
    assert not set(seen) & set(s.pool.items)  # the client sees per-session ids, not the pool's
    got = rows(study)
    assert [v.item_id for v in got] == s.plan and {v.rater_id for v in got} == {s.rater_id}
    assert {v.study_id for v in got} == {"hpa-x4-v1"} and {v.role for v in got} == {"rated"}
    assert [v.score for v in got] == [1, 2, 3, 4, 5, 1]
    assert all(v.method == s.pool.items[v.item_id].method and v.app_version for v in got)
    methods = sorted(v.method for v in got)
    assert methods == sorted(set(methods)) and len(methods) == 6  # 6 items, 6 methods: one each


@pytest.mark.parametrize("bad", [0, 6, -1, "5; DROP", "", None, True, 4.0, "05", " 5", [5], "５"])
def test_bad_scores_rejected(bad):
    with pytest.raises(VoteRejected, match="whole number"):
        parse_score(bad)


def test_good_scores_parse():
    import numpy as np

    assert [parse_score(x) for x in (1, "3", np.int64(5))] == [1, 3, 5]


def test_forged_votes_rejected_and_not_stored(study):
    s, _ = study.start()
    other, _ = study.start()
    with pytest.raises(VoteRejected, match="No rating session"):
        study.vote(None, "0123456789abcdef", 5)  # unknown session
    with pytest.raises(VoteRejected, match="No rating session"):
        study.vote({"rater_id": "x"}, "0123456789abcdef", 5)
    item = study.next_item(s)
    for forged in ("0123456789abcdef", study.next_item(other), s.plan[-1], "x" * 10_000, 5, None):
        with pytest.raises(VoteRejected) as e:  # never served to s (the other's item, a later one, junk)
            study.vote(s, forged, 5)
        assert str(e.value) == NOT_SERVED
    for score in (0, 6, "5; DROP"):
        with pytest.raises(VoteRejected, match="whole number"):
            study.vote(s, item, score)
    study.vote(s, item, 4)
    with pytest.raises(VoteRejected) as e:
        study.vote(s, item, 4)  # replay
    assert str(e.value) == ALREADY
    assert [(v.rater_id, v.item_id, v.score) for v in rows(study)] == [(s.rater_id, s.item_of(item), 4)]
    assert s.rejects == 6 + 3 + 1


def test_rate_limit_and_reject_cap(pool_dir, tmp_path):
    st = Study(MosConfig.from_env(pool=pool_dir, votes=tmp_path / "v.csv", items=4, min_seconds=30,
                                  max_rejects=3, repeat=False))
    s, _ = st.start()
    item = st.next_item(s)
    with pytest.raises(VoteRejected, match="at least 30 s"):
        st.vote(s, item, 3)
    s.served[item] -= 31  # the rater looked at it for long enough
    st.vote(s, item, 3)
    for _ in range(2):
        with pytest.raises(VoteRejected):
            st.vote(s, "0123456789abcdef", 3)
    assert s.closed == CLOSED and s.phase == "closed"
    with pytest.raises(VoteRejected) as e:  # closed: even a valid vote is refused now
        st.next_item(s)
    assert str(e.value) == CLOSED and len(rows(st)) == 1


def test_expired_session(study):
    s, _ = study.start()
    item = study.next_item(s)
    s.last_active -= study.cfg.session_timeout + 1
    with pytest.raises(VoteRejected) as e:
        study.vote(s, item, 3)
    assert str(e.value) == EXPIRED and rows(study) == []


def test_store_failure_keeps_item_pending(study, monkeypatch):
    s, _ = study.start()
    item = study.next_item(s)

    def boom(row):
        raise StoreError("disk full")

    monkeypatch.setattr(study.store, "append", boom)
    with pytest.raises(VoteRejected) as e:
        study.vote(s, item, 2)
    assert str(e.value) == NOT_SAVED and s.pending == item and item not in s.rated
    monkeypatch.undo()
    study.vote(s, item, 2)
    assert len(rows(study)) == 1


def test_session_is_never_copied(study):
    import copy

    s, _ = study.start()
    assert copy.deepcopy(s) is s and isinstance(s, Session)
    assert NO_SESSION and BAD_SCORE  # messages exist and are non-empty


def test_hidden_repeat_and_per_session_ids(pool_dir, tmp_path):
    st = Study(MosConfig.from_env(pool=pool_dir, votes=tmp_path / "v.csv", items=6, min_seconds=0, repeat=True,
                                  study_id="s-rep"))
    a, _ = st.start()
    b, _ = st.start()
    assert len(a.plan) == 7 and a.repeat_at is not None and a.plan.count(a.plan[a.repeat_at]) == 2
    assert a.plan.index(a.plan[a.repeat_at]) + 3 <= a.repeat_at  # at least 3 showings apart
    shown = []
    while (p := st.next_item(a)) is not None:
        st.vote(a, p, 3)
        shown.append(p)
    assert len(set(shown)) == 7  # the repeat comes under a fresh id
    got = rows(st)
    assert [v.role for v in got].count("repeat") == 1 and len(read_votes(st.cfg.votes).votes) == 7
    assert {v.study_id for v in got} == {"s-rep"}
    pb = st.next_item(b)
    assert not set(a.public) & set(b.public) and pb not in a.public  # ids differ between sessions
    with pytest.raises(VoteRejected, match="not shown"):
        st.vote(b, shown[0], 3)  # another session's id is nothing here


def test_add_repeat_positions():
    import numpy as np

    from sr.mos.session import add_repeat

    rng = np.random.default_rng(0)
    for n in range(2, 12):
        for _ in range(50):
            plan, at = add_repeat(list("abcdefghijkl"[:n]), rng)
            first = plan.index(plan[at])
            assert len(plan) == n + 1 and at - first >= min(3, n)
    assert add_repeat(["a"], rng) == (["a"], None)


def test_study_wide_vote_cap(pool_dir, tmp_path):
    from sr.mos.session import BUSY

    st = Study(MosConfig.from_env(pool=pool_dir, votes=tmp_path / "v.csv", items=6, min_seconds=0,
                                  votes_per_minute=3, repeat=False))
    s, _ = st.start()
    for _ in range(3):
        st.vote(s, st.next_item(s), 4)
    item = st.next_item(s)
    with pytest.raises(VoteRejected) as e:
        st.vote(s, item, 4)
    assert str(e.value) == BUSY and s.rejects == 0 and s.pending == item  # the rater is not penalised
    st._recent_votes[0] -= 61  # a minute later the oldest vote has left the window
    st.vote(s, item, 4)
    assert len(rows(st)) == 4
