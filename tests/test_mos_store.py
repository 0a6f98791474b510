"""MOS votes CSV: format, formula escaping, crash tolerance, concurrent appends from processes."""
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import REPO
from sr.mos.store import COLUMNS, HEADER, StoreError, VoteStore, escape_cell, read_votes, unescape_cell


def row(i, rater="r1", **kw):
    d = {"timestamp_utc": "2026-01-02T03:04:05.678Z", "rater_id": rater, "item_id": f"item{i:04d}",
         "image_id": f"img{i % 3:03d}", "method": "bicubic", "score": 1 + i % 5, "seconds": "1.250",
         "app_version": "0.1.0"}
    d.update(kw)
    return d


def test_roundtrip_header_once(tmp_path):
    st = VoteStore(tmp_path / "sub" / "votes.csv")
    for i in range(3):
        st.append(row(i))
    data = (tmp_path / "sub" / "votes.csv").read_bytes()
    assert data.startswith(HEADER) and data.count(b"timestamp_utc") == 1 and data.endswith(b"\n")
    res = read_votes(tmp_path / "sub" / "votes.csv")
    assert res.problems == [] and [v.score for v in res.votes] == [1, 2, 3]
    assert res.votes[0].item_id == "item0000" and res.votes[0].seconds == 1.25
    assert res.votes[0].time == pytest.approx(1767323045.678)


def test_formula_cells_escaped_and_restored(tmp_path):
    assert escape_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and escape_cell("@x") == "'@x"
    assert escape_cell("-2") == "'-2" and escape_cell("+1") == "'+1" and escape_cell("a\nb") == "a b"
    assert unescape_cell("'=x") == "=x" and unescape_cell("'plain") == "'plain"
    st = VoteStore(tmp_path / "v.csv")
    st.append(row(0, image_id="=cmd|' /C calc'!A0", rater_id="@r"))
    text = (tmp_path / "v.csv").read_text()
    assert "\n'=cmd" not in text and ",'=cmd" in text.replace('"', "") and ",'@r," in text
    v = read_votes(tmp_path / "v.csv").votes[0]
    assert v.image_id == "=cmd|' /C calc'!A0" and v.rater_id == "@r"


def test_damaged_trailing_line_reported_then_cut_by_next_writer(tmp_path):
    path = tmp_path / "v.csv"
    st = VoteStore(path)
    st.append(row(0))
    st.append(row(1))
    with open(path, "ab") as f:  # a writer crashed in the middle of its row
        f.write(b"2026-01-02T03:04:05.678Z,r9,item9,img0")
    res = read_votes(path)
    assert len(res.votes) == 2
    assert len(res.problems) == 1 and "damaged trailing line" in res.problems[0] and ":4:" in res.problems[0]
    st.append(row(2))
    res = read_votes(path)
    assert [v.item_id for v in res.votes] == ["item0000", "item0001", "item0002"] and res.problems == []


def test_invalid_lines_skipped_not_fatal(tmp_path):
    path = tmp_path / "v.csv"
    VoteStore(path).append(row(0))
    with open(path, "ab") as f:
        f.write(b"garbage line\n")
        f.write(b"2026-01-02T03:04:05.678Z,r1,itemX,img0,bicubic,6,1.0,0.1.0\n")  # score 6
        f.write(b"\x00\x00\x00\n")
    VoteStore(path).append(row(1))
    res = read_votes(path)
    assert [v.item_id for v in res.votes] == ["item0000", "item0001"]
    assert len(res.problems) == 3 and all("damaged line skipped" in p for p in res.problems)


def test_foreign_file_refused(tmp_path):
    path = tmp_path / "v.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(StoreError, match="not a votes file"):
        VoteStore(path).append(row(0))
    assert "not a votes file" in read_votes(path).problems[0]


def test_merge_folders_drops_duplicates(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    VoteStore(tmp_path / "a" / "votes.csv").append(row(0))
    for i in range(2):  # a restarted mirror re-uploads the older rows
        VoteStore(tmp_path / "b" / "votes.csv").append(row(i))
    res = read_votes([tmp_path])
    assert len(res.votes) == 2 and res.duplicates == 1


def test_threads_share_one_store(tmp_path):
    st = VoteStore(tmp_path / "v.csv")
    threads = [threading.Thread(target=lambda k=k: [st.append(row(i, rater=f"t{k}")) for i in range(40)])
               for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res = read_votes(tmp_path / "v.csv")
    assert len(res.votes) == 160 and res.problems == [] and res.duplicates == 0


WRITER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from sr.mos.store import VoteStore
    path, go, k, n = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    st = VoteStore(path)
    while not go.exists():
        time.sleep(0.005)
    for i in range(n):
        st.append({"timestamp_utc": "2026-01-02T03:04:05.678Z", "rater_id": "proc" + k,
                   "item_id": "it%05d" % i, "image_id": "img%03d" % (i % 7), "method": "m" + k,
                   "score": 1 + i % 5, "seconds": "%.3f" % (i / 10), "app_version": "x" * (i % 50)})
""")


def test_processes_append_concurrently(tmp_path):
    """4 processes x 75 rows, released at once: exactly 300 parseable rows, none lost or mixed."""
    path, go = tmp_path / "votes.csv", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(go), str(k), "75"], env=env)
             for k in range(4)]
    time.sleep(0.3)
    go.touch()
    assert all(p.wait(timeout=60) == 0 for p in procs)
    res = read_votes(path)
    assert res.problems == [] and res.duplicates == 0 and len(res.votes) == 300
    assert {(v.rater_id, v.item_id) for v in res.votes} == {(f"proc{k}", f"it{i:05d}") for k in range(4) for i in range(75)}
    for v in res.votes:
        i = int(v.item_id[2:])
        assert v.method == "m" + v.rater_id[4:] and v.score == 1 + i % 5 and v.app_version == "x" * (i % 50)
    assert path.read_bytes().count(b"\n") == 301 and len(COLUMNS) == 10


def test_reads_old_files_without_study_id(tmp_path):
    """Version-1 files (eight columns, no study_id/role) still read; new rows carry both."""
    from sr.mos.store import OLD_HEADER

    old = tmp_path / "old.csv"
    old.write_bytes(OLD_HEADER + b"2026-01-02T03:04:05.678Z,r1,it1,img001,bicubic,3,2.5,0.1\n")
    new = tmp_path / "new.csv"
    VoteStore(new).append({"timestamp_utc": "2026-01-02T03:04:06.000Z", "rater_id": "r1", "item_id": "it1",
                           "image_id": "img001", "method": "bicubic", "score": 4, "seconds": 1,
                           "app_version": "0.2", "study_id": "s1", "role": "repeat"})
    res = read_votes([old, new])
    assert res.problems == [] and res.duplicates == 0 and len(res.votes) == 2  # a repeat is its own vote
    assert (res.votes[0].study_id, res.votes[0].role) == ("", "rated")
    assert (res.votes[1].study_id, res.votes[1].role) == ("s1", "repeat")
    with pytest.raises(StoreError, match="not a votes file of this version"):
        VoteStore(old).append({"timestamp_utc": "2026-01-02T03:04:06.000Z", "rater_id": "r2", "item_id": "i",
                               "image_id": "img001", "method": "bicubic", "score": 4, "seconds": 1,
                               "app_version": "0.2"})
