"""Security basics (issue 7): no pickle or dynamic code anywhere, only safetensors weights; the app
fetches no URL a client gives it and trusts no client file path; run folders stay inside the
app's folder; the MOS votes CSV cannot carry a spreadsheet formula.

The app tests use the server of tests/test_hostile_inputs.py (`python app.py`, tiny zoo), in
which loopback counts as a public address for Gradio's SSRF guard: a URL that the app would
fetch from the internet reaches the local server of :func:`url_target` instead, which counts
the requests it gets. (Gradio downloads a URL given as a file path, and serves any public URL
at ``/gradio_api/file=<url>``; ``sr.app.security.NoRemoteFetch``, installed by app.py, refuses both.)
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CountingPngHandler, REPO

THIS = Path(__file__).resolve()


# ------------------------------------------------------------------------------ code and weights

def _python_files() -> list[Path]:
    files = [REPO / "app.py", *sorted((REPO / "sr").rglob("*.py")), *sorted((REPO / "scripts").rglob("*.py")),
             *sorted((REPO / "tests").rglob("*.py"))]
    return [f for f in files if f.is_file() and f.resolve() != THIS]


# (pattern, why it is dangerous). Comments and docstrings count too: keep the words out of them.
FORBIDDEN = [
    (r"\bimport\s+(c?pickle|dill|joblib|shelve|marshal)\b|\bfrom\s+(c?pickle|dill|joblib|shelve|marshal)\b"
     r"|\b(c?pickle|dill|joblib|marshal)\.(loads?|Unpickler)\b", "pickle-family deserialisation"),
    (r"\btorch\.load\s*\(", "torch.load unpickles"),
    (r"\bweights_only\s*=\s*False", "unpickling torch checkpoints"),
    (r"allow_pickle\s*=\s*True", "numpy pickles"),
    (r"(?<![\w.])(eval|exec)\s*\(", "dynamic code"),
    (r"\byaml\.(unsafe_)?load\s*\(", "yaml can build objects"),
    (r"\bshell\s*=\s*True", "shell injection"),
    (r"\b(urlopen|urlretrieve)\s*\(|\brequests\.(get|post)\s*\(", "fetching URLs"),
    (r"\b__import__\s*\(", "dynamic import"),
]
# files allowed to fetch URLs, and why (none of them takes a URL from a user)
URL_ALLOWED = {
    "tests/hubserver.py": "the fake Hub server of the Hub tests",
}


def test_no_pickle_no_dynamic_code_no_url_fetching_in_the_code():
    hits = []
    for f in _python_files():
        rel = f.relative_to(REPO).as_posix()
        text = f.read_text(encoding="utf-8", errors="replace")
        for pattern, why in FORBIDDEN:
            if why == "fetching URLs" and rel in URL_ALLOWED:
                continue
            for m in re.finditer(pattern, text):
                line = text.count("\n", 0, m.start()) + 1
                hits.append(f"{rel}:{line}: {m.group(0)!r} ({why})")
    assert hits == []


def test_weights_are_safetensors_only():
    """Tracked files hold no pickle-based weights, and every model folder is config + safetensors."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    # the only .bin files: OpenVINO IR weights of the int8 models (raw tensors, read by OpenVINO's
    # IR reader, never unpickled), each pinned by sha256 in the registry
    from sr.zoo import sha256_file

    reg = json.loads((REPO / "sr" / "zoo.json").read_text())
    ir_weights = {f"weights/{m['id']}/openvino_int8.bin": m["int8"]["bin_sha256"] for m in reg["models"] if m.get("int8")}
    pickled = [f for f in tracked if re.search(r"\.(pt|pth|pkl|pickle|ckpt|bin|joblib|npz|h5)$", f, re.I)
               and f not in ir_weights]
    assert pickled == []
    for f, sha in ir_weights.items():
        assert sha256_file(REPO / f) == sha, f
    for folder in sorted(p for p in (REPO / "weights").glob("*") if p.is_dir()):
        names = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
        allowed = {"config.json", "model.safetensors", "README.md", ".gitattributes", "test_input.npy", "test_output.npy",
                   "openvino_int8.xml", "openvino_int8.bin", "int8.json"}
        assert names <= allowed, (folder, names)
    zoo_src = (REPO / "sr" / "zoo.py").read_text()
    assert "safetensors" in zoo_src and "strict=True" in zoo_src
    # test tensors are plain .npy arrays, read without pickle
    tt_src = (REPO / "sr" / "testtensors.py").read_text()
    assert tt_src.count("np.load(") == tt_src.count("allow_pickle=False") >= 2


def test_a_pickle_disguised_as_weights_is_never_unpickled(tiny_zoo, tmp_path):
    """A model.safetensors that is really a pickle fails the checksum and the safetensors parser;
    its payload never runs."""
    from sr import zoo

    reg, weights = tiny_zoo
    marker = tmp_path / "pwned"
    # a hand-made protocol-0 pickle that would call os.system if it were ever unpickled
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    f = weights / "srgan" / "model.safetensors"
    f.write_bytes(payload)
    zoo.clear_shared()
    with pytest.raises(zoo.ZooError):
        zoo.load("srgan")
    from safetensors.torch import load_file

    with pytest.raises(Exception):  # the safetensors parser refuses it (a header, not code)
        load_file(str(f))
    assert not marker.exists()


# ------------------------------------------------------------------------------ the app: URLs and paths

from test_hostile_inputs import app  # noqa: E402,F401  (the shared `python app.py` server)


_Counter = CountingPngHandler  # a loopback server that counts the requests it gets


@pytest.fixture(scope="module")
def url_target():
    """A loopback web server serving a valid PNG at any path; ``.hits`` lists the requests."""
    _Counter.hits = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield type("Target", (), {"base": f"http://127.0.0.1:{srv.server_address[1]}", "hits": _Counter.hits})
    srv.shutdown()


def _call(app, api: str, data: list) -> tuple[str, str]:
    """Raw Gradio API call (no gradio_client in between): (event, data) of the final SSE event."""
    import httpx

    with httpx.Client(timeout=60) as h:
        r = h.post(f"{app['url']}/gradio_api/call/{api}", json={"data": data})
        if r.status_code != 200:  # refused before the queue (e.g. a URL as a path)
            return "refused", r.text
        text = h.get(f"{app['url']}/gradio_api/call/{api}/{r.json()['event_id']}").text
    events = re.findall(r"^event: (\w+)\ndata: (.*)$", text, re.M)
    return events[-1] if events else ("none", text)


def _first_event(h, url: str) -> str:
    """The first SSE event of a call (``error``, ``complete``, ``generating``...), without waiting
    for a streaming endpoint to finish."""
    with h.stream("GET", url) as r:
        for line in r.iter_lines():
            if line.startswith("event: ") and line[7:] != "heartbeat":
                return line[7:]
    return "none"


def _file(path: str, **kw) -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}, **kw}


FILE_COMPONENTS = {"File", "Image", "Video", "Audio", "Gallery", "Model3D", "ImageSlider", "ImageEditor"}


def _file_endpoints(app) -> dict[str, list[dict]]:
    """Every named endpoint that takes a file-like input, with its parameters (/gradio_api/info)."""
    import httpx

    info = httpx.get(f"{app['url']}/gradio_api/info", timeout=30).json()["named_endpoints"]
    return {name: ep["parameters"] for name, ep in info.items()
            if any(prm["component"] in FILE_COMPONENTS for prm in ep["parameters"])}


def _args_with(params: list[dict], file_value) -> list:
    out = []
    for prm in params:
        if prm["component"] in FILE_COMPONENTS:
            out.append({"video": file_value, "subtitles": None} if prm["component"] == "Video" else file_value)
        else:
            out.append(prm.get("parameter_default"))
    return out


def test_the_app_never_fetches_a_url_given_as_a_file(app, url_target):
    """A URL in place of an upload, on every endpoint that takes a file (written as plain, upper-case
    and JSON-escaped URLs): refused, never fetched. Without a guard Gradio downloads it before the
    app's function even runs."""
    import httpx

    endpoints = _file_endpoints(app)
    assert {"/load_image", "/compare", "/upscale"} <= set(endpoints)
    for k, (api, params) in enumerate(endpoints.items()):
        for variant in ("plain", "upper", "url-only", "json-escaped"):
            u = f"{url_target.base}/cells_{k}_{variant}.png"
            f = {"plain": _file(u, url=u, orig_name="cells.png"),
                 "upper": _file(u.replace("http://", "HTTP://"), orig_name="cells.png"),
                 "url-only": _file(f"/tmp/cells_{k}.png", url=u, orig_name="cells.png"),
                 "json-escaped": _file(u, orig_name="cells.png")}[variant]
            body = json.dumps({"data": _args_with(params, f)})
            if variant == "json-escaped":  # http:\/\/127.0.0.1... and \u0068ttp: the same JSON string
                body = body.replace("://", ":\\/\\/").replace('"http', '"\\u0068ttp')
            with httpx.Client(timeout=60) as h:
                r = h.post(f"{app['url']}/gradio_api/call{api}", content=body,
                           headers={"content-type": "application/json"})
                if r.status_code == 200:  # accepted into the queue: its first event must be an error
                    event = _first_event(h, f"{app['url']}/gradio_api/call{api}/{r.json()['event_id']}")
                    assert event == "error", (api, variant, event)
                else:
                    assert r.status_code in (400, 403, 422), (api, variant, r.status_code)
    assert url_target.hits == []


def test_gradio_file_and_proxy_routes_fetch_no_url(app, url_target):
    import httpx

    for route in ("file", "proxy"):
        for u in (f"{url_target.base}/x.png", f"{url_target.base.upper()}/y.png"):
            r = httpx.get(f"{app['url']}/gradio_api/{route}={u}", timeout=30)
            assert r.status_code in (400, 403, 404), (route, u, r.status_code)
    assert url_target.hits == []


def test_client_file_paths_outside_the_uploads_are_refused(app):
    import httpx

    secrets = ["/etc/passwd", str(REPO / "sr" / "zoo.json"), str(REPO / "app.py"), "../../../../etc/passwd",
               str(app["root"] / "zoo.json"), str(app["tmp"]), str(REPO / "examples" / "usaf_target.png"),
               "/proc/self/environ", "file:///etc/passwd"]
    for p in secrets:
        for api, args in (("load_image", [_file(p)]), ("compare", [_file(p), "hr", ["bicubic"], 32, 192])):
            event, data = _call(app, api, args)
            assert event in ("error", "refused"), (api, p, data[:300])
            assert "root:" not in data and '"models"' not in data
    with httpx.Client(timeout=30) as h:
        for p in ("/etc/passwd", str(REPO / "app.py"), str(REPO / "sr" / "zoo.json"), str(app["root"] / "zoo.json"),
                  str(app["root"] / "weights" / "srgan" / "model.safetensors"), str(app["log"]),
                  str(app["root"] / "votes.csv"), f"{app['gradio']}/../zoo.json"):
            assert h.get(f"{app['url']}/gradio_api/file={p}").status_code in (403, 404), p
        # the examples are public on purpose (allowed_paths) and stay readable
        assert h.get(f"{app['url']}/gradio_api/file={REPO / 'examples' / 'usaf_target.png'}").status_code == 200


def test_url_and_middleware_helpers():
    from sr.app import errors, inputs, security

    for u in ("http://x/y.png", "HTTPS://x", " https://x", "ftp://x/y", "file:///etc/passwd", "s3://b/k"):
        assert security.is_url(u), u
    for p in ("/tmp/a.png", "a.png", "C:\\x.png", "", None, 3, "http_cells.png"):
        assert not security.is_url(p), p
    with pytest.raises(errors.AppError, match="does not fetch URLs"):
        inputs.read_input("https://example.org/cells.png")
    refuse = security.NoRemoteFetch.refuses
    assert refuse("/gradio_api/file=https://x/y.png") and refuse("/gradio_api/file=%68ttps://x")
    assert refuse("/gradio_api/proxy=http://x") and refuse("/file=HTTP://x")
    assert not refuse("/gradio_api/file=/tmp/gradio/abc/cells.png") and not refuse("/gradio_api/upload")


def test_no_remote_fetch_middleware_on_raw_asgi():
    """The middleware alone (what app.py installs): refusals, and untouched pass-through."""
    import asyncio

    from sr.app.security import NoRemoteFetch

    seen = []

    async def inner(scope, receive, send):
        msg = await receive()
        seen.append(msg["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def run(path, body=b"", method="POST", ctype=b"application/json", chunks=1):
        parts = [body[i::chunks] for i in range(chunks)] if chunks > 1 else [body]
        parts = [body[:len(body) // 2], body[len(body) // 2:]] if chunks == 2 else parts
        queue = [{"type": "http.request", "body": b, "more_body": i < len(parts) - 1} for i, b in enumerate(parts)]
        out = []

        async def receive():
            return queue.pop(0) if queue else {"type": "http.disconnect"}

        async def send(m):
            out.append(m)

        scope = {"type": "http", "method": method, "path": path, "headers": [(b"content-type", ctype)]}
        asyncio.run(NoRemoteFetch(inner)(scope, receive, send))
        return out[0]["status"]

    fd = '{"data": [{"path": "%s", "meta": {"_type": "gradio.FileData"}}, "hr"]}'
    for u in ("http://evil.example/x.png", "HTTPS://evil.example/x.png", "http:\\/\\/evil.example\\/x.png",
              "\\u0068ttp://evil.example/x.png", "ftp://evil.example/x"):
        assert run("/gradio_api/call/compare", (fd % u).encode()) == 400, u
        assert run("/gradio_api/queue/join", (fd % u).encode(), chunks=2) == 400, u
    ok = (fd % "/tmp/gradio/abc/cells.png").replace('"hr"', '"see http://x/ in text"').encode()
    assert run("/gradio_api/call/compare", ok, chunks=2) == 200 and seen[-1] == ok  # body replayed intact
    assert run("/gradio_api/upload", b"--x\r\n" + (fd % "http://x/y").encode(), ctype=b"multipart/form-data; b=x") == 200
    assert run("/gradio_api/file=https://evil.example/x.png", method="GET") == 403
    assert run("/gradio_api/file=/tmp/gradio/abc/cells.png", method="GET") == 200
    assert run("/gradio_api/call/compare", b"x" * (NoRemoteFetch.MAX_BODY + 1)) == 413


def test_run_folders_stay_inside_the_app_folder(tmp_path, monkeypatch):
    from sr.app import workspace

    root = tmp_path / "app_tmp"
    monkeypatch.setenv("SR_APP_TMP", str(root))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("x")
    for session in ("../../outside", "/etc", "..", ".", "a/../../b", "\x00", "=cmd|' /C calc'!A0", "x" * 500):
        d = workspace.new_run_dir(session)
        assert d.resolve().is_relative_to(root.resolve()) and d.parent.parent == root, (session, d)
        workspace.cleanup_state({"run_dir": str(d)})
        assert not d.exists()
    link = root / "sess" / "link"
    link.parent.mkdir(parents=True)
    link.symlink_to(outside, target_is_directory=True)
    for forged in ("/", str(root), str(root / ".."), str(outside), str(link), str(root / "sess" / ".." / ".."),
                   str(tmp_path)):
        workspace.cleanup_state({"run_dir": forged})
    assert (outside / "keep.txt").exists() and root.is_dir()


# ------------------------------------------------------------------------------ MOS CSV

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def _cells(raw: str) -> list[str]:
    return [c for row in csv.reader(io.StringIO(raw)) for c in row]


hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "=HYPERLINK(\"http://x\",\"y\")",
                     "=cmd|' /C calc'!A0", '"=1"', "=1\n=2", ",=1", "'=1", " =1", "\uff1d1"]))


@settings(max_examples=60, deadline=None)
@given(values=st.lists(hostile_text, min_size=5, max_size=5))
def test_mos_csv_cells_never_start_a_formula(tmp_path_factory, values):
    mos_store = pytest.importorskip("sr.mos.store", reason="the MOS study (sr/mos/store.py) is not there yet")
    path = tmp_path_factory.mktemp("votes") / "votes.csv"
    row = {"timestamp_utc": "2026-01-02T03:04:05.678Z", "rater_id": values[0], "item_id": values[1],
           "image_id": values[2], "method": values[3], "score": 3, "seconds": "1.000", "app_version": values[4]}
    mos_store.VoteStore(path).append(row)
    raw = path.read_text(encoding="utf-8")
    assert raw.count("\n") == 2  # the header and exactly one physical line per vote
    for cell in _cells(raw):
        assert not cell.startswith(FORMULA_START), (cell, raw)
    back = mos_store.read_votes(path)
    if all(v.strip() for v in values[:4]):
        assert len(back.votes) == 1, back.problems
        v = back.votes[0]
        for got, want in zip((v.rater_id, v.item_id, v.image_id, v.method), values[:4]):
            want = want.replace("\r", " ").replace("\n", " ")
            if not want.startswith("'"):  # a leading quote is ambiguous by design (never generated)
                assert got == want


def test_mos_votes_carry_no_free_text(tmp_path_factory):
    """The vote endpoint stores only server-chosen values: hostile item ids and scores are refused
    and nothing reaches the CSV."""
    pytest.importorskip("sr.mos.session", reason="the MOS study (sr/mos/) is not there yet")
    from sr.mos.config import MosConfig
    from sr.mos.session import Study, VoteRejected
    from test_mos_pool import shared_tiny_pool

    votes = tmp_path_factory.mktemp("mosvotes") / "votes.csv"
    cfg = MosConfig.from_env(pool=shared_tiny_pool(tmp_path_factory), votes=votes, items=3, min_seconds=0,
                             results_key=None, hf_repo=None, max_rejects=100)
    study = Study(cfg)
    s, _ = study.start()
    item = study.next_item(s)
    for bad_item, bad_score in (("=1+1", 3), ("@SUM(A1)", 3), (item + "\n=1", 3), (item, "=1"), (item, "5; =1"),
                                (item, "+5"), (item, 5.0), (item, "-1"), ({"x": 1}, 3), (item, None)):
        with pytest.raises(VoteRejected):
            study.vote(s, bad_item, bad_score)
    assert not votes.exists() or votes.read_text().count("\n") <= 1
    study.vote(s, item, 4)
    raw = votes.read_text()
    for cell in _cells(raw):
        assert not cell.startswith(FORMULA_START)
    row = dict(zip(raw.splitlines()[0].split(","), next(csv.reader([raw.splitlines()[1]]))))
    assert re.fullmatch(r"[0-9a-f]+", row["rater_id"]) and row["item_id"] == s.item_of(item) and row["score"] == "4"
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", row["method"]) and re.fullmatch(r"[\w.-]+", row["image_id"])


def test_app_settings_limit_uploads_and_clean_temporary_files():
    """The upload limit reaches launch(); run folders and Gradio's cache are deleted over time."""
    ui = (REPO / "sr" / "app" / "ui.py").read_text()
    tab = (REPO / "sr" / "app" / "compare_tab.py").read_text()
    assert re.search(r"max_file_size\s*=\s*cfg\.max_file_size\(\)", ui)
    assert re.search(r"delete_cache\s*=", ui) and re.search(r"delete_callback\s*=\s*workspace\.cleanup_state", tab)
    assert "workspace.sweep_old(" in tab
    from sr.app import config as cfg

    env = dict(os.environ)
    try:
        os.environ.pop("SR_APP_MAX_FILE_SIZE", None)
        assert cfg.max_file_size() == "64mb"
    finally:
        os.environ.clear()
        os.environ.update(env)
    assert json.dumps(cfg.max_file_size())  # a plain string Gradio parses
