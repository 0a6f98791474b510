"""MOS tabs through the real Gradio app: blindness, forged votes, concurrent raters, results."""
import json
import re
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import gradio as gr
import httpx
import pytest
from gradio_client import Client

from conftest import REPO, free_port
from sr.mos.config import MosConfig
from sr.mos.store import read_votes
from sr.app.mos_tab import mos_tabs
from test_mos_pool import png_chunks, shared_tiny_pool

ITEMS = 6  # one item per method
RATERS = 4
VOTES_EACH = 5


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("mosapp")
    pool = shared_tiny_pool(tmp_path_factory)
    cfg = MosConfig.from_env(pool=pool, votes=root / "data" / "votes.csv", items=ITEMS, min_seconds=0,
                             results_delay=0, results_key=None, hf_repo=None, max_rejects=100, repeat=True,
                             sessions_per_hour=1000, access="open", access_file=root / "data" / "access.json",
                             hr_dir=root / "hr-not-there")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000000")  # no pandas summary after every event
        with gr.Blocks() as demo:
            gr.Markdown("host app")
            comps = mos_tabs(config=cfg)
        _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                                quiet=True)
    yield {"url": url.rstrip("/"), "cfg": cfg, "comps": comps, "pool": pool}
    demo.close()


def client(app) -> Client:
    return Client(app["url"], download_files=False, verbose=False)


def forbidden_words(app) -> list[str]:
    """Everything that would tell a rater what an item is."""
    zoo = json.loads((REPO / "sr" / "zoo.json").read_text())
    words = {m["id"] for m in zoo["models"]} | {"reference", "nearest", "bicubic", "ground truth", "srgan"}
    manifest = json.loads((app["pool"] / "manifest.json").read_text())
    words |= {i["image_id"] for i in manifest["images"]} | {"cell_", str(app["pool"])}
    words |= {i["item_id"] for i in manifest["items"]}  # the pool's permanent ids
    words |= {str(app["cfg"].votes), str(app["cfg"].votes.parent), "mos_pool", "/tmp/pytest"}
    return sorted(words)


def assert_blind(text: str, app, what: str):
    low = text.lower()
    for w in forbidden_words(app):
        assert w.lower() not in low, f"{what} reveals {w!r}"


def vote_error(c: Client, *args) -> str:
    with pytest.raises(Exception) as e:
        c.predict(*args, api_name="/mos_vote")
    return str(e.value)


def test_blindness_of_every_page_and_endpoint(app):
    url = app["url"]
    with httpx.Client(timeout=30) as h:
        for path in ("/", "/config", "/gradio_api/info", "/gradio_api/openapi.json"):
            r = h.get(url + path)
            if r.status_code == 200:
                assert_blind(r.text, app, path)
        assert all(h.get(url + p).status_code == 200 for p in ("/", "/config", "/gradio_api/info"))

        c = client(app)
        api = c.view_api(return_format="dict", print_info=False)
        assert {"/mos_start", "/mos_next", "/mos_vote", "/mos_results"} <= set(api["named_endpoints"])
        responses, images = [], []
        start = c.predict("", api_name="/mos_start")
        responses.append(start)
        images += [start[1], start[2]]
        out = c.predict(api_name="/mos_next")
        served = []
        while out[3]:
            responses.append(out)
            images.append(out[2])
            served.append(out[3])
            out = c.predict(out[3], 3, api_name="/mos_vote")
        responses.append(out)
        assert len(served) == len(set(served)) == ITEMS + 1 and "All done" in out[0]  # + the hidden repeat
        assert_blind(repr(responses), app, "API responses")
        sizes = set()
        for img in images:
            assert img["orig_name"] == "item.png" and re.search(r"/mos-[0-9a-f]{32}/item\.png$", img["url"])
            assert not any(i in img["url"] for i in served)  # the path does not even carry the item id
            r = h.get(img["url"])
            assert r.status_code == 200
            assert_blind(repr(dict(r.headers)), app, "image headers")
            assert png_chunks(r.content) == ["IHDR", "IDAT", "IEND"]  # no text/metadata chunks
            sizes.add(len(r.content))
        assert len(sizes) == 1  # same byte size for every method
        link = h.get(url + "/gradio_api/deep_link", params={"session_hash": c.session_hash}).json()
        if link:
            r = h.get(url + "/config", params={"deep_link": link})
            assert_blind(r.text, app, "deep-link config")
        for secret in (app["pool"] / "manifest.json", app["cfg"].votes,
                       app["pool"] / f"{served[0]}.png"):  # the server-side files are not reachable
            assert h.get(f"{url}/gradio_api/file={secret}").status_code in (403, 404)

        res = c.predict("", api_name="/mos_results")  # aggregate per method: names, but no item ids
        text = res[0] + "".join(h.get(f["url"]).text for f in res[2] if f["orig_name"].endswith((".csv", ".md")))
        assert "reference" in text and not any(i in text for i in served)


def test_forged_votes_rejected_through_api(app):
    before = len(read_votes(app["cfg"].votes).votes) if app["cfg"].votes.exists() else 0
    fresh = client(app)
    assert "No rating session" in vote_error(fresh, "0123456789abcdef", 5)  # unknown session
    with pytest.raises(Exception, match="No rating session"):
        fresh.predict(api_name="/mos_next")
    c, other = client(app), client(app)
    c.predict("", api_name="/mos_start")
    other.predict("", api_name="/mos_start")
    item = c.predict(api_name="/mos_next")[3]
    foreign, n_other = other.predict(api_name="/mos_next")[3], 0
    while foreign == item:  # sessions may share items; take one that c was not shown
        foreign, n_other = other.predict(foreign, 3, api_name="/mos_vote")[3], n_other + 1
    assert "not shown in this session" in vote_error(c, "0123456789abcdef", 5)
    assert "not shown in this session" in vote_error(c, foreign, 5)
    for bad in (0, 6, "5; DROP"):
        assert vote_error(c, item, bad)
    assert "Choose a rating" in vote_error(c, item, None)  # Submit without a choice
    nxt = c.predict(item, 5, api_name="/mos_vote")
    assert nxt[3] and nxt[3] != item
    assert "already been rated" in vote_error(c, item, 5)  # replay
    after = read_votes(app["cfg"].votes).votes
    assert len(after) == before + n_other + 1 and after[-1].score == 5
    assert after[-1].item_id != item and after[-1].study_id == app["cfg"].study_id  # stored under the pool id


def test_concurrent_raters_through_api(app):
    """RATERS raters vote at the same time through the app: the CSV holds exactly the accepted votes."""
    path = app["cfg"].votes
    before = len(read_votes(path).votes) if path.exists() else 0
    barrier = threading.Barrier(RATERS)

    def rater(k):
        c = client(app)
        c.predict("", api_name="/mos_start")
        out = c.predict(api_name="/mos_next")
        barrier.wait()
        done = []
        while out[3] and len(done) < VOTES_EACH:
            done.append((out[3], 1 + (k + len(done)) % 5))
            out = c.predict(out[3], done[-1][1], api_name="/mos_vote")
        return done

    with ThreadPoolExecutor(RATERS) as ex:
        results = list(ex.map(rater, range(RATERS)))
    res = read_votes(path)
    assert res.problems == [] and res.duplicates == 0
    new = res.votes[before:]
    assert len(new) == RATERS * VOTES_EACH == sum(map(len, results))
    by_rater = {}
    for v in new:
        by_rater.setdefault(v.rater_id, []).append(v.score)
    assert sorted(by_rater.values()) == sorted([sc for _, sc in r] for r in results)  # each rater's, in order
    raw = path.read_bytes()
    assert raw.count(b"\n") == len(res.votes) + 1 and raw.endswith(b"\n")


def test_results_key_and_delay(app, tmp_path):
    from sr.mos.store import VoteStore

    votes = tmp_path / "v.csv"
    if app["cfg"].votes.exists():  # this run's votes: all of them younger than the delay
        shutil.copy(app["cfg"].votes, votes)
    VoteStore(votes).append({"timestamp_utc": "2020-01-01T00:00:00.000Z", "rater_id": "old", "item_id": "i1",
                             "image_id": "img001", "method": "bicubic", "score": 3, "seconds": 2,
                             "app_version": "t"})
    with gr.Blocks():
        keyed = mos_tabs(config=MosConfig.from_env(pool=app["pool"], votes=votes, results_key="s3cret"))
        delayed = mos_tabs(config=MosConfig.from_env(pool=app["pool"], votes=votes, results_delay=3600,
                                                     results_key=None))
    assert keyed["key"].visible and not delayed["key"].visible
    with pytest.raises(gr.Error, match="results key"):
        keyed["server"].results("wrong")
    md, png, files = keyed["server"].results("s3cret")
    assert "| bicubic |" in md and png.endswith(".png") and len(files) == 3
    md, _, _ = delayed["server"].results("")
    # only the 2020 rater's session is over; everyone who voted in this test run is held back
    assert "not included yet" in md and "1 vote from 1 rater on 1 image" in md


def test_app_starts_without_pool(tmp_path, monkeypatch):
    monkeypatch.setenv("SR_MOS_POOL", str(tmp_path / "nopool"))
    monkeypatch.setenv("SR_MOS_VOTES", str(tmp_path / "votes.csv"))
    monkeypatch.setenv("SR_MOS_AUTO_BUILD", "0")
    for k in ("SR_MOS_HF_REPO", "SR_MOS_RESULTS_KEY", "SR_MOS_RESULTS_DELAY"):
        monkeypatch.delenv(k, raising=False)
    with gr.Blocks():
        c = mos_tabs()
    assert "not set up" in c["server"].notice() and str(tmp_path) not in c["server"].notice()
    assert c["server"].cfg.pool == tmp_path / "nopool"
    with pytest.raises(gr.Error, match="not set up") as e:
        c["server"].start("")
    assert str(tmp_path) not in str(e.value)  # no server path reaches a client
    md, _, _ = c["server"].results("")
    assert "No votes yet" in md


def _launch(cfg, host_text="host app"):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000000")
        with gr.Blocks() as demo:
            gr.Markdown(host_text)
            comps = mos_tabs(config=cfg)
        _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                                quiet=True)
    return demo, url.rstrip("/"), comps


def _session(c: Client) -> list:
    """One whole session through the API; returns the served ids."""
    c.predict("", api_name="/mos_start")
    out, served = c.predict(api_name="/mos_next"), []
    while out[3]:
        served.append(out[3])
        out = c.predict(out[3], 4, api_name="/mos_vote")
    assert "All done" in out[0]
    return served


def test_open_mode_limits_refuse_a_flood_not_a_rater(app, tmp_path):
    pool = app["pool"]
    cfg = MosConfig.from_env(pool=pool, votes=tmp_path / "votes.csv", items=3, min_seconds=0, results_key=None,
                             hf_repo=None, sessions_per_hour=2, access="open", access_file=tmp_path / "a.json")
    demo, url, _ = _launch(cfg)
    try:
        bot = Client(url, download_files=False, verbose=False, headers={"user-agent": "flood-bot/1.0"})
        _session(bot)
        _session(bot)  # "All done", then Start again: the per-client limit applies
        for _ in range(3):
            with pytest.raises(Exception, match="2 rating sessions in the last hour") as e:
                bot.predict("", api_name="/mos_start")
            assert "\n" not in str(e.value).strip()
        person = Client(url, download_files=False, verbose=False, headers={"user-agent": "Mozilla/5.0 person"})
        assert len(_session(person)) == 4  # 3 items + the hidden repeat, unaffected by the bot
        assert len(read_votes(cfg.votes).votes) == 3 * 4
    finally:
        demo.close()


def test_invite_mode_through_api(app, tmp_path):
    from sr.mos_cli import main

    pool = app["pool"]
    cfg = MosConfig.from_env(pool=pool, votes=tmp_path / "votes.csv", items=2, min_seconds=0, results_key=None,
                             hf_repo=None, access="invite", access_file=tmp_path / "a.json", study_id="inv1")
    out = tmp_path / "tokens.txt"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SR_MOS_ACCESS_FILE", str(cfg.access_file))
        mp.setenv("SR_MOS_STUDY", "inv1")
        assert main(["invite", "--n", "2", "--out", str(out)]) == 0
    tokens = out.read_text().split()
    assert len(tokens) == 2 and not any(t in cfg.access_file.read_text() for t in tokens)
    demo, url, comps = _launch(cfg)
    try:
        assert comps["token"].visible
        c = Client(url, download_files=False, verbose=False)
        with pytest.raises(Exception, match="invitation code"):
            c.predict("", api_name="/mos_start")
        with pytest.raises(Exception, match="not valid"):
            c.predict("made-up-token", api_name="/mos_start")
        c.predict(tokens[0], api_name="/mos_start")
        out = c.predict(api_name="/mos_next")
        c.predict(out[3], 5, api_name="/mos_vote")
        other = Client(url, download_files=False, verbose=False)
        with pytest.raises(Exception, match="already been used"):
            other.predict(tokens[0], api_name="/mos_start")  # a used token is refused
        other.predict(tokens[1], api_name="/mos_start")
        votes = read_votes(cfg.votes).votes
        assert len(votes) == 1 and votes[0].study_id == "inv1"
    finally:
        demo.close()


def test_pool_built_in_background_then_usable(tmp_path, monkeypatch):
    """No pool: the tab says "being prepared", builds one from the HR folder, then Start works (no restart)."""
    from PIL import Image

    import sr.mos.autobuild as ab
    from conftest import blobs, make_tiny_zoo
    from sr import api, zoo

    reg, weights = make_tiny_zoo(tmp_path / "zoo")
    monkeypatch.setenv("SR_REGISTRY", str(reg))
    monkeypatch.setenv("SR_WEIGHTS_DIR", str(weights))
    zoo.reload_registry(); zoo.clear_shared(); api._fast.clear()  # noqa: E702
    hr = tmp_path / "hr"
    hr.mkdir()
    for k in range(4):
        Image.fromarray(blobs(48, 56, seed=k)).save(hr / f"cell_{k}.png")
    go = threading.Event()
    real = ab.build_pool

    def slow_build(*a, **kw):
        assert go.wait(60)
        return real(*a, **kw)

    monkeypatch.setattr(ab, "build_pool", slow_build)
    cfg = MosConfig.from_env(pool=tmp_path / "data" / "pool", votes=tmp_path / "v.csv", items=4, min_seconds=0,
                             hf_repo=None, hr_dir=hr, crop=32, study_id="auto1",
                             methods=("nearest", "bicubic", "srgan", "no-such-model"))
    try:
        with gr.Blocks():
            c = mos_tabs(config=cfg)
        srv = c["server"]
        assert "being prepared" in srv.notice()
        with pytest.raises(gr.Error, match="being prepared") as e:
            srv.start("")
        assert str(tmp_path) not in str(e.value) + srv.notice()
        go.set()
        for _ in range(600):
            if ab.pool_state(cfg) == "ready":
                break
            threading.Event().wait(0.1)
        assert ab.pool_state(cfg) == "ready" and srv.notice() == ""
        manifest = json.loads((cfg.pool / "manifest.json").read_text())
        assert set(manifest["methods"]) == {"nearest", "bicubic", "srgan", "reference"}
        assert manifest["study_id"] == "auto1" and manifest["stretch_percentiles"] == [0.5, 99.8]
        msg, bad, good, session = srv.start("")
        assert bad and good and session.plan
        while (out := srv.next(session))[3]:
            srv.vote(out[3], 3, session)
        assert {v.study_id for v in read_votes(cfg.votes).votes} == {"auto1"}
    finally:
        go.set()
        zoo.reload_registry(); zoo.clear_shared(); api._fast.clear()  # noqa: E702


def test_rater_view_and_image_display(app):
    comps, srv = app["comps"], app["comps"]["server"]

    class Req:
        query_params = {"rate": "1"}

    hidden = srv.rater_view(Req())
    assert len(hidden) == len(srv.hide_in_rater_view) >= 2 and all(u.get("visible") is False for u in hidden)
    assert comps["results_tab"] in srv.hide_in_rater_view and comps["rate_tab"] not in srv.hide_in_rater_view
    Req.query_params = {}
    assert all("visible" not in u for u in srv.rater_view(Req()))
    from sr.app.mos_tab import MOS_CSS

    assert "pixelated" in MOS_CSS and "384px" in MOS_CSS
    for k in ("image", "cal_bad", "cal_good"):
        assert "mos-img" in comps[k].elem_classes and comps[k].height >= 384
    with httpx.Client(timeout=30) as h:  # the results view no longer counts recent raters
        res = client(app).predict("", api_name="/mos_results")
        assert "now)" not in res[0]


def test_stretch_is_shared_by_all_versions_of_a_crop():
    import numpy as np

    from sr.mos.pool import display_stretch

    ref = np.linspace(10, 60, 64 * 64).reshape(64, 64).astype(np.uint8)
    outs = {"reference": ref, "x": (ref // 2).astype(np.uint8)}
    got, (lo, hi) = display_stretch(outs, ref)
    assert lo == pytest.approx(np.percentile(ref, 0.5), abs=1e-3) and hi == pytest.approx(np.percentile(ref, 99.8), abs=1e-3)
    assert got["reference"].max() == 255 and got["reference"].min() == 0
    want = np.clip((outs["x"].astype(np.float32) - lo) * 255 / (hi - lo) + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(got["x"], want) and got["x"].max() < 128  # the same mapping, not a stretch of its own


def test_hf_login_mode_wiring(app, tmp_path, monkeypatch):
    """hf-login: a refusal without a profile, one session per (hashed) account (no Hub: no LoginButton)."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-token"))
    cfg = MosConfig.from_env(pool=app["pool"], votes=tmp_path / "v.csv", items=2, min_seconds=0, hf_repo=None,
                             access="hf-login", access_file=tmp_path / "a.json", study_id="hf1")
    with gr.Blocks():
        c = mos_tabs(config=cfg)
    assert "login" not in c and not c["token"].visible  # no OAuth here: Gradio could not build a LoginButton
    srv = c["server"]
    with pytest.raises(gr.Error, match="Sign in"):
        srv.start("", None, None)

    class Profile:
        username = "Alice"

    _, bad, good, session = srv.start("", None, Profile())
    assert bad and good and session.rater_key and "alice" not in (tmp_path / "a.json").read_text().lower()
    with pytest.raises(gr.Error, match="already taken part"):
        srv.start("", None, Profile())
