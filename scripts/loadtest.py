#!/usr/bin/env python
"""Load test of the demo on loopback: N concurrent gradio_client users run comparisons and blind
MOS rating sessions for a fixed time, bounded in requests.

    python scripts/loadtest.py --users 16 --seconds 60 --out docs/loadtest.md

It starts ``python app.py`` on 127.0.0.1 in a temporary folder (its own votes CSV, MOS item pool
and run folders; nothing of the project's ``data/`` is touched), with the tiny random test zoo
of ``tests/conftest.py`` by default or the real zoo (``--real-zoo``: ``sr/zoo.json`` and
``weights/``, read only). Every user has its own ``Client`` (its own session) and repeats:

* ``/compare`` on a small HR crop of an example image (bicubic and a learned model), then
  fetches the first result image as a browser would;
* a MOS session: ``/mos_start``, ``/mos_next``, then a few ``/mos_vote`` per round (fetching
  each image to rate), until the session is done and a new one starts;
* deliberate rejections: every few rounds a compare of a file that is not an image, and once
  per MOS session a forged vote (an item id that was not shown); each must be refused with a
  message.

It records every request (latency, outcome), the server's resident memory (``/proc/PID``)
before, during and after the load, and afterwards checks that the votes CSV holds exactly the
accepted votes. The report (markdown + JSON next to it) lists latency percentiles per
endpoint and a verdict; the exit status is 0 when every check passed.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30)  # latency histogram edges, seconds


# ---------------------------------------------------------------------------- server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def connect(worker, timeout=None) -> bool:
    """Open the worker's gradio_client and httpx clients, then wait for the start barrier; False
    (with ``worker.error`` set, or the barrier broken) when the worker should not run."""
    import httpx
    from gradio_client import Client

    try:
        worker.client = Client(worker.url, verbose=False, download_files=False)
        worker.http = httpx.Client(timeout=timeout) if timeout is not None else httpx.Client()
    except Exception as exc:  # noqa: BLE001
        worker.error = f"client could not connect: {exc}"
        worker.ready.abort()
        return False
    try:
        worker.ready.wait()
    except threading.BrokenBarrierError:
        return False
    return True


class Server:
    def __init__(self, root: Path, env: dict, timeout: float = 180):
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "app.log"
        env = dict(env, GRADIO_SERVER_PORT=str(self.port), GRADIO_SERVER_NAME="127.0.0.1",
                   GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
        env.pop("SPACE_ID", None)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited ({self.proc.returncode}):\n{self.log_path.read_text()[-3000:]}")
            if "Running on" in self.log_path.read_text():
                self.startup_s = time.time() - t0
                return
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"app.py did not start in {timeout} s")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        self._log.close()


class MemorySampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float]] = []
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            v = rss_mb(self.pid)
            if v is not None:
                self.samples.append((time.time(), v))
            self._halt.wait(self.every)

    def stop(self):
        self._halt.set()
        self.join(5)


# ---------------------------------------------------------------------------- setup

def prepare(root: Path, real_zoo: bool) -> tuple[dict, list[Path], Path, str]:
    """Environment for the app, HR test images, a bad file, and the learned model to compare."""
    import numpy as np
    from PIL import Image

    env = dict(os.environ)
    if not real_zoo:
        from sr.testing import make_tiny_zoo

        reg, weights = make_tiny_zoo(root / "zoo")
        env.update(SR_REGISTRY=str(reg), SR_WEIGHTS_DIR=str(weights))
        os.environ.update(SR_REGISTRY=str(reg), SR_WEIGHTS_DIR=str(weights))
    env.update(HF_HUB_OFFLINE="1", SR_APP_TMP=str(root / "app_tmp"), GRADIO_TEMP_DIR=str(root / "gradio"),
               SR_MOS_POOL=str(root / "pool"), SR_MOS_VOTES=str(root / "votes.csv"), SR_MOS_ITEMS="6",
               SR_MOS_MIN_SECONDS="0", SR_MOS_RESULTS_DELAY="0",
               # simulated raters all come from 127.0.0.1: lift the per-client and study-wide MOS caps
               SR_MOS_SESSIONS_PER_HOUR="1000000", SR_MOS_VOTES_PER_MINUTE="1000000")
    for k in ("SR_MOS_HF_REPO", "SR_MOS_RESULTS_KEY"):
        env.pop(k, None)

    from sr import imio, zoo

    zoo.reload_registry()
    avail = [e.id for e in zoo.super_resolvers(available_only=False) if e.learned and e.available]
    learned = next((m for m in ("srgan-improved", "srgan", "srresnet-improved", "srresnet") if m in avail),
                   avail[0] if avail else None)
    if learned is None:
        raise SystemExit("no learned model with weights in this zoo; use the tiny zoo (default)")

    hr = root / "hr"
    hr.mkdir(parents=True)
    sources = ["hpa_test_02ad0dd2_green.png", "hpa_test_79c54a6e_blue.png", "hpa_test_3d5e183c_red.png",
               "zebrafish_16bit_crop.tif", "mouse_brain_section.png", "usaf_target.png"]
    images = []
    for i, name in enumerate(sources):
        a, info = imio.read_image(REPO / "examples" / name)
        h, w = a.shape[:2]
        y, x = (h - 128) // 2, (w - 128) // 2
        crop = np.ascontiguousarray(a[y:y + 128, x:x + 128])
        p = hr / f"hr_{i}{'.tif' if crop.dtype != np.uint8 else '.png'}"
        imio.write_image(p, crop)
        images.append(p)
    bad = root / "not_an_image.png"
    bad.write_bytes(os.urandom(2048))

    # the MOS item pool, built with the same zoo (nearest, bicubic, the learned model, reference)
    r = subprocess.run([sys.executable, "-m", "sr", "mos", "build", "--data", str(hr), "--out", str(root / "pool"),
                        "--crop", "64", "--models", f"bicubic,{learned}"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"building the MOS pool failed:\n{r.stderr[-3000:]}")
    Image.open(images[0]).close()
    return env, images, bad, learned


# ---------------------------------------------------------------------------- users

@dataclass
class Record:
    endpoint: str
    t: float  # start, seconds since the load began
    latency: float
    outcome: str  # "ok" | "rejected" (deliberate, refused as it should) | "failed"
    detail: str = ""


@dataclass
class Shared:
    deadline: float
    max_requests: int
    t0: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    records: list[Record] = field(default_factory=list)
    accepted_votes: list[tuple[str, int]] = field(default_factory=list)
    started: int = 0

    def budget(self) -> bool:
        with self.lock:
            if time.time() >= self.deadline or self.started >= self.max_requests:
                return False
            self.started += 1
            return True


class User(threading.Thread):
    def __init__(self, k: int, url: str, shared: Shared, images: list[Path], bad: Path, learned: str,
                 votes_per_round: int, bad_every: int, timeout: float, ready: threading.Barrier,
                 max_rounds: int | None = None):
        super().__init__(daemon=True, name=f"user-{k}")
        self.k, self.url, self.s = k, url, shared
        self.images, self.bad, self.learned = images, bad, learned
        self.votes_per_round, self.bad_every, self.timeout = votes_per_round, bad_every, timeout
        self.ready = ready
        self.max_rounds = max_rounds
        self.rng = random.Random(k)
        self.item: str | None = None  # the MOS item shown now (None: no session)
        self.forged = False
        self.error: str | None = None

    def _call(self, endpoint: str, *args, expect_error: str | None = None):
        """One request; returns its result or None. ``expect_error``: a deliberate bad request,
        refused with a message matching this regex."""
        t = time.time()
        try:
            out = self.client.submit(*args, api_name=endpoint).result(timeout=self.timeout)
        except Exception as exc:  # noqa: BLE001
            dt = time.time() - t
            msg = f"{type(exc).__name__}: {exc}"[:300]
            ok = expect_error is not None and re.search(expect_error, str(exc))
            self._record(endpoint, t, dt, "rejected" if ok else "failed", msg)
            return None
        dt = time.time() - t
        if expect_error is not None:
            self._record(endpoint, t, dt, "failed", "a deliberate bad request was accepted")
            return None
        self._record(endpoint, t, dt, "ok")
        return out

    def _record(self, endpoint, t, dt, outcome, detail=""):
        with self.s.lock:
            self.s.records.append(Record(endpoint, t - self.s.t0, dt, outcome, detail))

    def _fetch(self, what: str, filedata) -> None:
        """GET a result file as the browser would."""
        import httpx

        url = filedata.get("url") if isinstance(filedata, dict) else None
        if not url or not self.s.budget():
            return
        t = time.time()
        try:
            r = self.http.get(url, timeout=self.timeout)
            ok = r.status_code == 200 and len(r.content) > 0
            self._record(what, t, time.time() - t, "ok" if ok else "failed", "" if ok else f"HTTP {r.status_code}")
        except httpx.HTTPError as exc:
            self._record(what, t, time.time() - t, "failed", f"{type(exc).__name__}: {exc}"[:300])

    def run(self):
        if not connect(self):
            return
        rounds = 0
        while (self.max_rounds is None or rounds < self.max_rounds) and self._round(rounds):
            rounds += 1
        self.http.close()

    def _round(self, n: int) -> bool:
        from gradio_client import handle_file

        s = self.s
        if not s.budget():
            return False
        img = self.images[(self.k + n) % len(self.images)]
        out = self._call("/compare", handle_file(str(img)), "hr", ["bicubic", self.learned], 32, 192)
        if out is not None:
            gallery = out[1] or []
            if gallery:
                self._fetch("GET result image", gallery[-1].get("image"))
        if self.bad_every and n % self.bad_every == self.k % self.bad_every:
            if not s.budget():
                return False
            self._call("/compare", handle_file(str(self.bad)), "hr", ["bicubic"], 32, 192,
                       expect_error=r"not a PNG, JPEG, TIFF")
        # MOS: start a session if there is none, then rate a few images
        if self.item is None:
            if not s.budget():
                return False
            if self._call("/mos_start", "") is None:
                return True
            if not s.budget():
                return False
            nxt = self._call("/mos_next")
            if nxt is None:
                return True
            self.item, self.forged = nxt[3] or None, False
            self._fetch("GET MOS image", nxt[2])
        for _ in range(self.votes_per_round):
            if self.item is None:
                break
            if not self.forged:  # once per session: a vote that must be refused
                if not s.budget():
                    return False
                self._call("/mos_vote", "0123456789abcdef", 3, expect_error=r"not shown in this session")
                self.forged = True
            if not s.budget():
                return False
            score = self.rng.randint(1, 5)
            item = self.item
            out = self._call("/mos_vote", item, score)
            if out is None:
                self.item = None  # start over next round
                break
            with s.lock:
                s.accepted_votes.append((item, score))
            self.item = out[3] or None
            if self.item:
                self._fetch("GET MOS image", out[2])
        return True


# ---------------------------------------------------------------------------- hostile mix

def prepare_hostile(root: Path) -> dict:
    """Files for the hostile mix: the issue-15 TIFF (292 KB zlib, 4x4096x4096 float32 decoded),
    a short mp4 of 100,000 16x16 frames, a 1 MiB upload for the flood."""
    import numpy as np
    import tifffile
    import imageio_ffmpeg

    d = root / "hostile"
    d.mkdir(exist_ok=True)
    bomb = d / "bomb.tif"
    tifffile.imwrite(bomb, np.zeros((4, 4096, 4096), np.float32), compression="zlib", photometric="minisblack")
    long_mp4 = d / "long.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "color=c=gray:s=16x16:r=1000", "-frames:v", "100000", "-c:v", "libx264", "-preset",
                    "ultrafast", "-pix_fmt", "yuv420p", str(long_mp4)], check=True, timeout=300)
    blob = d / "flood.png"
    blob.write_bytes(os.urandom(2**20))
    return {"bomb": bomb, "long": long_mp4, "blob": blob}


URL_BODIES = [  # (content, headers): the three bypasses of issue 15 and other spellings
    ('{"data":[{"path":"http:/\\/127.0.0.1:9/config","meta":{"_type":"gradio.FileData"}}],"session_hash":"h"}',
     "utf-8", [("content-type", "application/json")]),
    ('{"data":[{"path":"http://127.0.0.1:9/x.png","meta":{"_type":"gradio.FileData"}}],"session_hash":"h"}',
     "utf-8", [("content-type", "application/json"), ("content-type", "multipart/form-data")]),
    ('{"data":[{"path":"https://example.com/big.png","meta":{"_type":"gradio.FileData"}}],"session_hash":"h"}',
     "utf-16-le", [("content-type", "application/json")]),
    ('{"data":[{"path":"\\u0068ttp://127.0.0.1:9/x","meta":{"_type":"gradio.FileData"}}],"session_hash":"h"}',
     "utf-32", [("content-type", "application/json")]),
    ('{"data":[{"path":"//example.com/x.png","meta":{"_type":"gradio.FileData"}}],"session_hash":"h"}',
     "utf-8", [("content-type", "application/json")]),
]


class Hostile(threading.Thread):
    """One hostile client: TIFF bombs, long videos, URL variants and upload floods, in turn."""

    def __init__(self, k: int, url: str, shared: Shared, files: dict, timeout: float, ready: threading.Barrier):
        super().__init__(daemon=True, name=f"hostile-{k}")
        self.k, self.url, self.s, self.files, self.timeout, self.ready = k, url, shared, files, timeout, ready
        self.error: str | None = None

    def _record(self, endpoint, t, outcome, detail=""):
        with self.s.lock:
            self.s.records.append(Record(endpoint, t - self.s.t0, time.time() - t, outcome, detail[:300]))

    def _gradio(self, name, api, args, refusal):
        t = time.time()
        try:
            self.client.submit(*args, api_name=api).result(timeout=self.timeout)
            self._record(name, t, "failed", "a hostile request was accepted")
        except Exception as exc:  # noqa: BLE001
            ok = re.search(refusal, str(exc))
            self._record(name, t, "rejected" if ok else "failed", f"{type(exc).__name__}: {exc}")

    def run(self):
        import httpx
        from gradio_client import handle_file

        if not connect(self, timeout=self.timeout):
            return
        n = self.k
        while self.s.budget():
            kind = n % 4
            n += 1
            if kind == 0:
                self._gradio("hostile: TIFF bomb /load_image", "/load_image", [handle_file(str(self.files["bomb"]))],
                             r"MiB decoded|result would be|over this demo")
            elif kind == 1:
                self._gradio("hostile: 100k-frame video", "/upscale_video",
                             [handle_file(str(self.files["long"])), "bicubic"], r"frames, over the limit")
            elif kind == 2:
                for body, enc, headers in URL_BODIES:
                    t = time.time()
                    try:
                        r = self.http.post(f"{self.url}/gradio_api/call/load_image", content=body.encode(enc),
                                           headers=headers)
                        self._record("hostile: URL as a file", t, "rejected" if r.status_code in (400, 403) else "failed",
                                     f"HTTP {r.status_code}")
                    except httpx.HTTPError as exc:
                        self._record("hostile: URL as a file", t, "failed", f"{type(exc).__name__}: {exc}")
            else:
                for _ in range(5):
                    t = time.time()
                    try:
                        with open(self.files["blob"], "rb") as fh:
                            r = self.http.post(f"{self.url}/gradio_api/upload", files={"files": ("flood.png", fh)})
                        outcome = "ok" if r.status_code == 200 else "rejected" if r.status_code in (411, 413, 507) else "failed"
                        self._record("hostile: upload flood (1 MiB)", t, outcome, f"HTTP {r.status_code}")
                    except httpx.HTTPError as exc:
                        self._record("hostile: upload flood (1 MiB)", t, "failed", f"{type(exc).__name__}: {exc}")
        self.http.close()


# ---------------------------------------------------------------------------- report

def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    i = (len(v) - 1) * q / 100
    lo, hi = int(i), min(int(i) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (i - lo)


def summarize(records: list[Record], seconds: float) -> dict:
    by = collections.defaultdict(list)
    for r in records:
        by[r.endpoint].append(r)
    table = {}
    for ep, rs in sorted(by.items()):
        lat = [r.latency for r in rs if r.outcome == "ok"]
        hist = [sum(1 for x in lat if (BUCKETS[i - 1] if i else 0) <= x < (BUCKETS[i] if i < len(BUCKETS) else 1e18))
                for i in range(len(BUCKETS) + 1)]
        table[ep] = {
            "requests": len(rs), "ok": len(lat),
            "rejected": sum(r.outcome == "rejected" for r in rs),
            "failed": sum(r.outcome == "failed" for r in rs),
            "per_s": len(rs) / seconds if seconds else 0.0,
            "mean_s": sum(lat) / len(lat) if lat else float("nan"),
            **{f"p{q}_s": percentile(lat, q) for q in (50, 90, 95, 99)},
            "max_s": max(lat) if lat else float("nan"),
            "histogram": hist,
        }
    return table


def _f(x, nd=3):
    return "-" if x is None or x != x else f"{x:.{nd}f}"


def markdown(rep: dict) -> str:
    c, v, m, chk = rep["config"], rep["votes"], rep["memory"], rep["checks"]
    verdict = "PASS" if all(x["pass"] for x in chk.values()) else "FAIL"
    lines = [
        "# Load test of the demo",
        "",
        f"**{verdict}**: {c['users']} concurrent `gradio_client` users for {c['seconds']:g} s on loopback "
        f"({rep['totals']['requests']} requests, {rep['totals']['per_s']:.1f}/s), {c['zoo']} zoo, "
        f"compare with `bicubic` + `{c['learned']}` on {c['image_px']} HR crops, MOS sessions of "
        f"{c['mos_items']} items.",
        "",
        f"Command: `{c['command']}`  ",
        f"Normal users: {rep['normal_users']['requests']} requests, {rep['normal_users']['failed']} failed, "
        f"p95 of successful requests {_f(rep['normal_users']['p95_s'])} s; hostile clients alongside: "
        f"{rep['normal_users']['hostile_clients']}  ",
        f"Machine: {c['machine']}; load average before the test {c['loadavg_before']}; "
        f"server start {c['startup_s']:.1f} s; app settings: `SR_APP_CONCURRENCY={c['app_concurrency']}`, "
        "queue max size 64.",
        "",
        "## Checks",
        "",
        "| check | result | value |",
        "| --- | --- | --- |",
    ]
    for name, x in chk.items():
        lines.append(f"| {name} | {'pass' if x['pass'] else '**FAIL**'} | {x['value']} |")
    lines += [
        "",
        "## Latency per endpoint (successful requests, seconds)",
        "",
        "| endpoint | requests | ok | deliberate rejections | failed | per s | mean | p50 | p90 | p95 | p99 | max |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for ep, t in rep["endpoints"].items():
        lines.append(f"| `{ep}` | {t['requests']} | {t['ok']} | {t['rejected']} | {t['failed']} | {t['per_s']:.2f} | "
                     f"{_f(t['mean_s'])} | {_f(t['p50_s'])} | {_f(t['p90_s'])} | {_f(t['p95_s'])} | "
                     f"{_f(t['p99_s'])} | {_f(t['max_s'])} |")
    edges = ["<" + f"{BUCKETS[0]:g}"] + [f"{BUCKETS[i - 1]:g}-{BUCKETS[i]:g}" for i in range(1, len(BUCKETS))] + \
            [f">={BUCKETS[-1]:g}"]
    lines += ["", "Latency histogram (successful requests; seconds):", "",
              "| endpoint | " + " | ".join(edges) + " |", "| --- |" + " ---: |" * len(edges)]
    for ep, t in rep["endpoints"].items():
        lines.append(f"| `{ep}` | " + " | ".join(str(n) for n in t["histogram"]) + " |")
    lines += [
        "",
        "## Memory of the server process (RSS, MiB)",
        "",
        f"after start {_f(m['startup_mb'], 0)}; baseline after warm-up {_f(m['baseline_mb'], 0)}; "
        f"peak under load {_f(m['peak_mb'], 0)}; {m['settle_s']:g} s after the load {_f(m['after_mb'], 0)} "
        f"({m['after_mb'] - m['baseline_mb']:+.0f} MiB against the baseline; allowed "
        f"{m['tolerance_mb']:.0f} MiB).",
        "",
        "## Votes",
        "",
        f"{v['accepted']} votes accepted by the server, {v['csv_rows']} rows in the votes CSV, "
        f"{v['lost']} lost, {v['unexpected']} unexpected, {v['duplicates']} duplicates, "
        f"{len(v['problems'])} damaged lines; {v['sessions']} rater sessions.",
        "",
        "## Temporary files",
        "",
        f"{rep['temp']['run_dirs']} run folders left in `SR_APP_TMP` by {c['users'] + 1} client sessions "
        f"(a session keeps only its last run, deleted with the session or after 6 h); Gradio's cache holds "
        f"{rep['temp']['gradio_cache_files']} files, {rep['temp']['gradio_cache_mb']:.1f} MiB (uploads and "
        f"served results; `delete_cache` removes them after 6 h).",
    ]
    if rep["failures"]:
        lines += ["", "## Failed requests (first 20)", ""]
        lines += [f"* `{f['endpoint']}` at {f['t']:.1f} s: {f['detail']}" for f in rep["failures"][:20]]
    lines += ["", "Regenerate: `python scripts/loadtest.py --users 16 --seconds 60 --out docs/loadtest.md` "
              "(`--real-zoo` for the trained models).", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=16)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--max-requests", type=int, default=20000, help="stop after this many requests in all")
    p.add_argument("--out", default="docs/loadtest.md", help="markdown report; the JSON goes next to it")
    p.add_argument("--real-zoo", action="store_true", help="the trained zoo (sr/zoo.json, weights/), not the tiny one")
    p.add_argument("--votes-per-round", type=int, default=3)
    p.add_argument("--bad-every", type=int, default=4, help="a deliberate bad upload every N rounds (0: never)")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds before one request counts as failed")
    p.add_argument("--settle", type=float, default=10.0, help="idle seconds before the memory is read again")
    p.add_argument("--rss-tolerance-mb", type=float, default=None,
                   help="allowed RSS growth after the load (default: max(64 MiB, 10%% of the baseline))")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (server log, votes)")
    p.add_argument("--hostile", type=int, default=0,
                   help="hostile clients running alongside the users (TIFF bombs, 100k-frame videos, URL "
                        "variants, upload floods)")
    a = p.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="sr_loadtest_"))
    server = None
    try:
        loadavg = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"preparing in {root} ...", flush=True)
        env, images, bad, learned = prepare(root, a.real_zoo)
        hostile_files = prepare_hostile(root) if a.hostile else None
        server = Server(root, env)
        print(f"server pid {server.pid} at {server.url} (started in {server.startup_s:.1f} s)", flush=True)
        startup_mb = rss_mb(server.pid)

        # warm-up: every request type once, so the baseline includes loaded models and caches
        shared = Shared(deadline=time.time() + 3600, max_requests=10**9)
        shared.t0 = time.time()
        warm = User(-1, server.url, shared, images, bad, learned, 2, 1, a.timeout, threading.Barrier(1), max_rounds=2)
        warm.run()
        if warm.error or any(r.outcome == "failed" for r in shared.records):
            raise SystemExit(f"warm-up failed: {warm.error or [r for r in shared.records if r.outcome == 'failed']}")
        warm_votes = list(shared.accepted_votes)
        time.sleep(2)
        baseline_mb = rss_mb(server.pid)

        sampler = MemorySampler(server.pid)
        sampler.start()
        shared = Shared(deadline=0, max_requests=a.max_requests)
        ready = threading.Barrier(a.users + a.hostile + 1)
        users = [User(k, server.url, shared, images, bad, learned, a.votes_per_round, a.bad_every, a.timeout, ready)
                 for k in range(a.users)]
        hostiles = [Hostile(k, server.url, shared, hostile_files, a.timeout, ready) for k in range(a.hostile)]
        for u in users + hostiles:
            u.start()
        try:
            ready.wait(timeout=300)
        except threading.BrokenBarrierError:
            raise SystemExit("users could not connect: " + "; ".join(u.error or "" for u in users if u.error))
        shared.t0 = time.time()
        shared.deadline = shared.t0 + a.seconds
        print(f"{a.users} users running for {a.seconds:g} s ...", flush=True)
        for u in users + hostiles:
            u.join(a.seconds + a.timeout + 60)
        elapsed = time.time() - shared.t0
        time.sleep(a.settle)
        sampler.stop()
        after_mb = rss_mb(server.pid)
        alive = server.proc.poll() is None
        load_samples = [v for t, v in sampler.samples if t <= shared.t0 + elapsed]
        peak_mb = max(load_samples) if load_samples else None

        # votes: the CSV must hold exactly the accepted votes (warm-up included)
        from sr.mos.store import read_votes

        res = read_votes(root / "votes.csv")
        # item ids are random per session (the client never sees the pool's ids): match the scores
        accepted = collections.Counter(score for _item, score in warm_votes + shared.accepted_votes)
        stored = collections.Counter(v.score for v in res.votes)
        lost = sum((accepted - stored).values())
        unexpected = sum((stored - accepted).values())
        sessions = len({v.rater_id for v in res.votes})
        run_dirs = sum(1 for s in (root / "app_tmp").glob("*") if s.is_dir() for _ in s.iterdir()) \
            if (root / "app_tmp").is_dir() else 0
        cache = [f for f in (root / "gradio").rglob("*") if f.is_file()] if (root / "gradio").is_dir() else []
        cache_mb = sum(f.stat().st_size for f in cache) / 2**20

        records = shared.records
        failures = [asdict(r) for r in records if r.outcome == "failed"]
        rejected = [r for r in records if r.outcome == "rejected"]
        endpoints = summarize(records, elapsed)
        tolerance = a.rss_tolerance_mb if a.rss_tolerance_mb is not None else max(64.0, 0.10 * (baseline_mb or 0))
        users_ok = [u for u in users if u.error is None]
        checks = {
            "concurrent users connected": {"pass": len(users_ok) == a.users, "value": f"{len(users_ok)}/{a.users}"},
            "failed requests (deliberate rejections excluded)": {"pass": not failures, "value": len(failures)},
            "deliberate bad requests refused": {"pass": bool(rejected), "value": len(rejected)},
            "lost votes": {"pass": lost == 0 and unexpected == 0 and not res.problems and res.duplicates == 0,
                           "value": f"{lost} lost, {unexpected} unexpected of {sum(accepted.values())} accepted"},
            "server alive after the load": {"pass": alive, "value": "yes" if alive else "no"},
            "memory back to the baseline": {
                "pass": after_mb is not None and baseline_mb is not None and after_mb - baseline_mb <= tolerance,
                "value": f"{_f(baseline_mb, 0)} -> peak {_f(peak_mb, 0)} -> {_f(after_mb, 0)} MiB"},
            "compare and MOS both exercised": {
                "pass": endpoints.get("/compare", {}).get("ok", 0) > 0 and endpoints.get("/mos_vote", {}).get("ok", 0) > 0,
                "value": f"{endpoints.get('/compare', {}).get('ok', 0)} compares, "
                         f"{endpoints.get('/mos_vote', {}).get('ok', 0)} votes"},
        }
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
        rep = {
            "config": {
                "users": a.users, "seconds": a.seconds, "max_requests": a.max_requests, "elapsed_s": elapsed,
                "zoo": "real" if a.real_zoo else "tiny random (tests/conftest.py)", "learned": learned,
                "image_px": "128x128", "mos_items": int(env["SR_MOS_ITEMS"]),
                "votes_per_round": a.votes_per_round, "bad_every": a.bad_every,
                "command": "python scripts/loadtest.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                "machine": f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}",
                "loadavg_before": loadavg, "startup_s": server.startup_s,
                "app_concurrency": env.get("SR_APP_CONCURRENCY", "1"),
            },
            "normal_users": {
                "failed": sum(r.outcome == "failed" for r in records if not r.endpoint.startswith("hostile")),
                "requests": sum(not r.endpoint.startswith("hostile") for r in records),
                "p95_s": percentile([r.latency for r in records if not r.endpoint.startswith("hostile")
                                     and r.outcome == "ok"], 95),
                "hostile_clients": a.hostile},
            "totals": {"requests": len(records), "per_s": len(records) / elapsed if elapsed else 0.0,
                       "ok": sum(r.outcome == "ok" for r in records), "rejected": len(rejected),
                       "failed": len(failures)},
            "endpoints": endpoints,
            "memory": {"startup_mb": startup_mb, "baseline_mb": baseline_mb, "peak_mb": peak_mb, "after_mb": after_mb,
                       "settle_s": a.settle, "tolerance_mb": tolerance,
                       "samples": [(round(t - shared.t0, 2), round(v, 1)) for t, v in sampler.samples]},
            "votes": {"accepted": sum(accepted.values()), "csv_rows": len(res.votes), "lost": lost,
                      "unexpected": unexpected, "duplicates": res.duplicates, "problems": res.problems,
                      "sessions": sessions},
            "temp": {"run_dirs": run_dirs, "gradio_cache_files": len(cache), "gradio_cache_mb": cache_mb},
            "checks": checks,
            "failures": failures,
        }
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(markdown(rep))
        out.with_suffix(".json").write_text(json.dumps(rep, indent=1, default=str) + "\n")
        print(markdown(rep))
        print(f"wrote {out} and {out.with_suffix('.json')}")
        return 0 if all(x["pass"] for x in checks.values()) else 1
    finally:
        if server is not None:
            server.stop()
        if a.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
