"""MOS access modes: open-mode client limit, one-time invite tokens, hashed accounts (no Hub needed)."""
import json

import pytest

from sr.mos.access import (ALREADY_TOOK_PART, BAD_TOKEN, NEED_LOGIN, NEED_TOKEN, AccessDenied, AccessFile,
                           ClientLimiter, Gate)
from sr.mos.config import MosConfig


def cfg(tmp_path, **kw):
    return MosConfig.from_env(pool=tmp_path / "pool", votes=tmp_path / "v.csv", access_file=tmp_path / "acc.json",
                              **kw)


def test_client_limiter_window_and_fingerprint():
    lim = ClientLimiter(2, window=3600)
    a = lim.fingerprint("1.2.3.4", "Firefox")
    assert a != lim.fingerprint("1.2.3.4", "Chrome") and a != lim.fingerprint("1.2.3.5", "Firefox")
    assert "1.2.3.4" not in a and len(a) == 64  # a keyed hash, not the address
    assert lim.allow(a, 0) and lim.allow(a, 1) and not lim.allow(a, 2) and not lim.allow(a, 3599)
    assert lim.allow(lim.fingerprint("1.2.3.4", "Chrome"), 5)  # another client is unaffected
    assert lim.allow(a, 3601.5)  # the first session left the hour
    assert ClientLimiter(1).fingerprint("x", "y") != lim.fingerprint("x", "y")  # secret per process


def test_open_gate_refuses_flood_with_one_line(tmp_path):
    g = Gate(cfg(tmp_path, sessions_per_hour=3))
    for _ in range(3):
        assert g.admit(ip="9.9.9.9", user_agent="bot") is None
    with pytest.raises(AccessDenied) as e:
        g.admit(ip="9.9.9.9", user_agent="bot")
    assert "3 rating sessions in the last hour" in str(e.value) and "\n" not in str(e.value)
    assert g.admit(ip="9.9.9.9", user_agent="a person") is None
    assert not (tmp_path / "acc.json").exists()  # open mode stores nothing


def test_invite_tokens_one_time_and_hashed(tmp_path):
    c = cfg(tmp_path, access="invite", study_id="s1")
    tokens = AccessFile(c.access_file).create_tokens(3, "s1")
    raw = (tmp_path / "acc.json").read_text()
    assert len(set(tokens)) == 3 and not any(t in raw for t in tokens)  # only salted hashes on disk
    assert len(json.loads(raw)["tokens"]) == 3
    g = Gate(c)
    key = g.admit(token=tokens[0])
    assert key and key not in tokens
    for bad, msg in ((tokens[0], BAD_TOKEN), ("nope", BAD_TOKEN), ("", NEED_TOKEN), (None, NEED_TOKEN),
                     ("x" * 10_000, BAD_TOKEN)):
        with pytest.raises(AccessDenied) as e:
            g.admit(token=bad)
        assert str(e.value) == msg
    with pytest.raises(AccessDenied):  # a token of another study
        Gate(cfg(tmp_path, access="invite", study_id="s2")).admit(token=tokens[1])
    assert Gate(c).admit(token=f"  {tokens[1]} ")  # a fresh gate (restart) reads the same file


def test_hf_login_one_session_per_study_hashed(tmp_path):
    c = cfg(tmp_path, access="hf-login", study_id="s1")
    g = Gate(c)
    with pytest.raises(AccessDenied) as e:
        g.admit(account=None)
    assert str(e.value) == NEED_LOGIN
    k = g.admit(account="Alice")
    with pytest.raises(AccessDenied) as e:
        g.admit(account="alice")
    assert str(e.value) == ALREADY_TOOK_PART
    assert g.admit(account="bob") != k
    assert Gate(cfg(tmp_path, access="hf-login", study_id="s2")).admit(account="alice")  # another study
    assert "alice" not in (tmp_path / "acc.json").read_text().lower()


def test_config_validation(tmp_path, monkeypatch):
    monkeypatch.setenv("SR_MOS_ACCESS", "everyone")
    with pytest.raises(ValueError, match="SR_MOS_ACCESS"):
        MosConfig.from_env()
    monkeypatch.setenv("SR_MOS_ACCESS", "INVITE")
    monkeypatch.setenv("SR_MOS_METHODS", "bicubic, srgan,,bicubic")
    monkeypatch.setenv("SR_MOS_REPEAT", "0")
    c = MosConfig.from_env()
    assert c.access == "invite" and c.methods == ("bicubic", "srgan") and c.repeat is False
    with pytest.raises(ValueError, match="SR_MOS_STUDY"):
        MosConfig.from_env(study_id="a/b")
