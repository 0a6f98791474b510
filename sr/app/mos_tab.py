"""Gradio tabs of the blind MOS study: "Blind rating" and "Rating results".

Call :func:`mos_tabs` inside a ``gr.Blocks`` (after the app's own tabs). Endpoints:

* ``/mos_start`` (invitation code; ignored unless ``SR_MOS_ACCESS=invite``) -> (message,
  calibration image "1 - Bad", calibration image "5 - Excellent")
* ``/mos_next`` () -> (message, progress, image, item id, cleared rating)
* ``/mos_vote`` (item id, score 1..5) -> same as ``/mos_next``, with the next image
* ``/mos_results`` (key) -> (summary markdown, heatmap PNG, [summary CSV, markdown, PNG])

Blindness: the browser receives pixels and an item id that is random per session and per
showing, nothing else. Images are written by this module into Gradio's cache as
``mos-<keyed hash of session and showing>/item.png`` (uncompressed PNG, the same pixel size
and byte size for every item, no metadata); the method lives only in the server-side pool
manifest and the votes CSV. Rejected votes and refused sessions raise ``gr.Error`` (a
one-line message, nothing stored); no message names a server path.

Without a pool the tab starts building one in the background (:mod:`sr.mos.autobuild`) and
says it is being prepared; Start works as soon as the pool is there. ``?rate=1`` in the URL
opens the rating view alone (every other part of the page hidden): the link to give raters.

Results are aggregates per method of this study's votes (they never name an item). Without
``SR_MOS_RESULTS_KEY`` they include only raters whose last vote is older than
``SR_MOS_RESULTS_DELAY`` (default: the session timeout), so nobody can watch the table change
after their own vote to learn what they just rated; with a key, the tab asks for it and shows
all votes live.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr

from ..mos.access import AccessDenied, Gate
from ..mos.autobuild import ensure_pool, pool_state
from ..mos.config import MosConfig
from ..mos.pool import PoolMissing, score_label
from ..mos.session import POOL_CHANGED, Session, Study, VoteRejected, get_study

log = logging.getLogger(__name__)

CHOICES = [(score_label(k), k) for k in range(1, 6)]

INSTRUCTIONS = """\
### Blind image quality rating

You will see a series of microscopy images, one at a time. Rate the **quality** of each image
on a five-point scale: **1 Bad, 2 Poor, 3 Fair, 4 Good, 5 Excellent**. Judge sharpness,
detail, noise and artefacts; there is no right answer and no time limit, but please give
your first impression. Rate each image on its own, even if it looks like one you saw before.
No personal data are recorded: only your ratings, under a random id for this session.

First you will see two examples of the ends of the scale. Press **Start** to begin.
"""

CALIBRATION_TEXT = ("These two examples show the ends of the scale. Look at them carefully, "
                    "then press **Begin rating**.")
RATE_TEXT = "Rate the image, then press **Submit rating**."
THANKS = "Thank you: rating recorded."
DONE_TEXT = "### All done, thank you!\nYour ratings have been recorded. You may close this tab."

PREPARING = ("The rating study is being prepared on this server (about a minute). "
             "Press \u201cStart\u201d again in a moment.")
UNAVAILABLE = "The rating study is not set up on this server yet."

MOS_CSS = """
#mos-rate .mos-img img { image-rendering: pixelated; image-rendering: crisp-edges;
  min-width: min(384px, 100%); width: 100%; max-width: 768px; height: auto; object-fit: contain; }
#mos-rate .mos-img { min-height: 384px; }
#mos-rate button { min-height: 3rem; font-size: 1.1rem; }
#mos-rate .mos-score label { min-height: 3rem; font-size: 1.1rem; flex: 1 1 100%; }
@media (min-width: 700px) { #mos-rate .mos-score label { flex: 1 1 0; } }
"""
"""Styles of the rating view (pass to ``launch(css=...)``): crisp pixels, at least 384 CSS px,
large touch targets, the five choices stacked on a phone."""

RATER_JS = """() => { if (new URLSearchParams(window.location.search).has('rate')) {
  let tries = 0;
  const pick = () => {
    const bs = [...document.querySelectorAll('button')].filter(x => x.textContent.trim() === 'Blind rating');
    if (bs.length) { bs.forEach(b => b.click()); } else if (tries++ < 100) { setTimeout(pick, 100); } };
  pick(); } }"""

RESULTS_INTRO = """\
### Results of the blind rating study
MOS (mean opinion score, 1-5) per method with a 95% confidence interval (bootstrap over raters
and images), the distribution of ratings, rater screening and pairwise tests.
The full report of a votes file: `python -m sr mos report VOTES.csv`.
"""


class _Server:
    """Per-app helpers around a :class:`Study` (images into the Gradio cache, results cache)."""

    def __init__(self, cfg: MosConfig):
        self.cfg = cfg
        self.study: Study = get_study(cfg)
        self._secret = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._results_key = None
        self._results_value = None
        self._report_dir: Path | None = None
        self.gate = Gate(cfg)
        self.hide_in_rater_view: list = []  # the host page's blocks, hidden under ?rate=1
        ensure_pool(cfg)  # no pool: build it in the background from cfg.hr_dir
        if cfg.hf_repo:  # the Hub may be slow or down: never make a rater wait for it
            threading.Thread(target=self.study.ensure_mirror, name="mos-mirror", daemon=True).start()

    # -- images
    def image_path(self, session: Session, showing: str, item_id: str) -> str:
        """The item's PNG in Gradio's cache under a keyed hash of the session and showing
        (unlinkable to the item and different in every session)."""
        from gradio.utils import get_upload_folder

        pool = session.pool
        tag = hmac.new(self._secret, f"{session.rater_id}:{showing}".encode(), hashlib.sha256).hexdigest()[:32]
        folder = Path(get_upload_folder()) / f"mos-{tag}"
        path = folder / "item.png"
        if not path.is_file():
            try:
                data = pool.png_bytes(item_id)
            except (KeyError, OSError):  # the pool was rebuilt under a running session
                raise _reject(POOL_CHANGED, "Please start again") from None
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{secrets.token_hex(6)}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return str(path)

    # -- rating
    def notice(self) -> str:
        """The tab's status line (evaluated on every page load: no restart needed)."""
        state = pool_state(self.cfg)
        if state == "ready":
            return ""
        return f"**{PREPARING if state == 'building' else UNAVAILABLE}**"

    def start(self, token, request: gr.Request | None = None, profile: gr.OAuthProfile | None = None):
        """Start a rating session: returns the message and the two calibration examples."""
        state = pool_state(self.cfg)
        if state != "ready":
            if state == "off":
                ensure_pool(self.cfg)  # the HR folder may have appeared since
            raise _reject(PREPARING if pool_state(self.cfg) == "building" else UNAVAILABLE, "Not available yet")
        client = getattr(request, "client", None)
        headers = getattr(request, "headers", None) or {}
        try:
            key = self.gate.admit(ip=getattr(client, "host", None), user_agent=headers.get("user-agent"),
                                  token=token, account=getattr(profile, "username", None))
            session, cal = self.study.start(rater_key=key)
        except AccessDenied as exc:
            raise _reject(str(exc), "Cannot start") from None
        except PoolMissing:
            raise _reject(UNAVAILABLE, "Not available") from None
        bad = self.image_path(session, "cal-low", cal[0].item_id) if cal else None
        good = self.image_path(session, "cal-high", cal[1].item_id) if cal else None
        return CALIBRATION_TEXT, bad, good, session

    def rater_view(self, request: gr.Request | None = None):
        """``?rate=1``: hide everything but the rating tab (the link given to raters)."""
        params = getattr(request, "query_params", None) or {}
        alone = str(params.get("rate", "")).lower() in ("1", "true", "yes")
        if not alone:  # the normal page: change nothing (RATER_JS opens the rating tab for raters)
            return [gr.skip()] * len(self.hide_in_rater_view)
        return [gr.update(visible=False) for _ in self.hide_in_rater_view]

    def _outputs(self, session: Session, item_id: str | None, message: str):
        if item_id is None:
            return DONE_TEXT, session.progress(), None, "", None
        return message, session.progress(), self.image_path(session, item_id, session.item_of(item_id)), item_id, None

    def next(self, session):
        """Show the image to rate now (the same one again until it is rated)."""
        try:
            item_id = self.study.next_item(session)
        except VoteRejected as exc:
            raise _reject(str(exc), "Cannot continue") from None
        return self._outputs(session, item_id, RATE_TEXT)

    def vote(self, item_id, score, session):
        """Rate the shown image 1-5; returns the next image."""
        if score is None and isinstance(session, Session) and session.pending is not None:
            raise _reject("Choose a rating from 1 (Bad) to 5 (Excellent) first.")
        try:
            self.study.vote(session, item_id, score)
            nxt = self.study.next_item(session)
        except VoteRejected as exc:
            raise _reject(str(exc)) from None
        return self._outputs(session, nxt, THANKS)

    @staticmethod
    def layout(session):
        phase = session.phase if isinstance(session, Session) else None
        return (gr.update(visible=phase not in ("calibration", "rating")),
                gr.update(visible=phase == "calibration"), gr.update(visible=phase == "rating"))

    # -- results
    def results(self, key):
        """Summary table, rating heatmap and downloads of the study so far."""
        from sr.mos.report import to_markdown, write_report
        from sr.mos.stats import analyze
        from sr.mos.store import ReadResult, read_votes

        cfg = self.cfg
        live = bool(cfg.results_key)
        if live and not hmac.compare_digest(str(key or "").encode(), cfg.results_key.encode()):
            raise _reject("Results are only shown with the results key of this study.", "Results")
        read = read_votes(cfg.votes) if cfg.votes.is_file() else ReadResult()
        read.problems = [p.replace(str(cfg.votes), cfg.votes.name) for p in read.problems]
        read.files = [Path(p.name) for p in read.files]
        votes = [v for v in read.votes if v.study_id in (cfg.study_id, "")]  # this study (and v1 files)
        note = None
        if not live and cfg.results_delay > 0:
            now, last = time.time(), {}
            for v in votes:
                last[v.rater_id] = max(last.get(v.rater_id, 0.0), v.time)
            recent = {r for r, t in last.items() if now - t < cfg.results_delay}
            votes = [v for v in votes if v.rater_id not in recent]
            note = (f"Raters whose last vote is less than {cfg.results_delay / 60:g} min old are not included "
                    f"yet, so this table never shows what anyone has just rated.")
        state = (len(read.votes), len(votes), tuple(read.problems), live)
        with self._lock:
            if state != self._results_key:
                analysis = analyze(votes, n_boot=1000, seed=0)
                if self._report_dir is None:
                    self._report_dir = Path(tempfile.mkdtemp(prefix="sr_mos_report_"))
                paths = write_report(analysis, self._report_dir, read, note=note)
                md = to_markdown(analysis, read, note=note)
                self._results_value = (md, str(paths["png"]), [str(paths[k]) for k in ("csv", "markdown", "png")])
                self._results_key = state
            return self._results_value


def _oauth_available() -> bool:
    """Gradio's LoginButton works on a Space with OAuth enabled, or locally with an HF token."""
    if os.environ.get("OAUTH_CLIENT_ID") and os.environ.get("SPACE_ID"):
        return True
    try:
        from huggingface_hub import get_token

        return bool(get_token())
    except Exception:
        return False


def _reject(message: str, title: str = "Rating not recorded") -> gr.Error:
    """An expected refusal: a toast for the rater, the message for API clients, no traceback in the log."""
    return gr.Error(message, title=title, print_exception=False)


def mos_tabs(app_state=None, *, config: MosConfig | None = None) -> dict:
    """Create the "Blind rating" and "Rating results" tabs in the current ``gr.Blocks``.

    ``app_state`` is accepted for the app's calling convention and not used (the study keeps
    its per-rater state in its own ``gr.State``). ``config`` defaults to
    :meth:`MosConfig.from_env`. Returns the components by name (for tests and layout).
    """
    from gradio.context import Context

    cfg = config or MosConfig.from_env()
    srv = _Server(cfg)
    host = Context.block
    before = [b for b in getattr(host, "children", []) if not isinstance(b, gr.State)]
    c: dict = {}
    with gr.Tab("Blind rating", id="mos-rate") as c["rate_tab"], gr.Column(elem_id="mos-rate"):
        gr.Markdown(INSTRUCTIONS)
        c["notice"] = gr.Markdown(srv.notice)
        c["timer"] = gr.Timer(10, active=pool_state(cfg) != "ready")
        if cfg.access == "hf-login":
            if _oauth_available():
                c["login"] = gr.LoginButton()
            else:  # Gradio would refuse to build the app; every Start is refused instead
                log.warning("SR_MOS_ACCESS=hf-login but no Hugging Face OAuth here (a Space with `hf_oauth: true`, "
                            "or HF_TOKEN for local testing): nobody can sign in")
        c["token"] = gr.Textbox(label="Invitation code", type="password", max_length=64,
                                visible=cfg.access == "invite")
        c["start"] = gr.Button("Start", variant="primary", size="lg")
        c["status"] = gr.Markdown()
        with gr.Column(visible=False) as calib:
            with gr.Row():
                c["cal_bad"] = gr.Image(label=score_label(1), type="filepath", interactive=False, height=400,
                                        alt_text="example image", buttons=["fullscreen"], elem_classes=["mos-img"])
                c["cal_good"] = gr.Image(label=score_label(5), type="filepath", interactive=False, height=400,
                                         alt_text="example image", buttons=["fullscreen"], elem_classes=["mos-img"])
            c["begin"] = gr.Button("Begin rating", variant="primary", size="lg")
        with gr.Column(visible=False) as rating:
            c["progress"] = gr.Markdown()
            c["image"] = gr.Image(label="Image to rate", type="filepath", interactive=False, height=512,
                                  alt_text="image to rate", buttons=["fullscreen"], elem_classes=["mos-img"])
            c["item"] = gr.Textbox(visible=False, label="item")
            c["score"] = gr.Radio(choices=CHOICES, label="Your rating", value=None, elem_classes=["mos-score"])
            c["submit"] = gr.Button("Submit rating", variant="primary", size="lg")
        c["session"] = session = gr.State(None)
        c["calib"], c["rating"] = calib, rating
        item_outputs = [c["status"], c["progress"], c["image"], c["item"], c["score"]]
        layout = dict(fn=srv.layout, inputs=[session], outputs=[c["start"], calib, rating], api_visibility="private",
                      queue=False)
        c["timer"].tick(lambda: (srv.notice(), gr.Timer(active=pool_state(cfg) != "ready")), None,
                        [c["notice"], c["timer"]], api_visibility="private", queue=False, show_progress="hidden")
        c["start"].click(srv.start, inputs=[c["token"]], outputs=[c["status"], c["cal_bad"], c["cal_good"], session],
                         api_name="mos_start", concurrency_limit=8, show_progress="hidden").then(**layout)
        c["begin"].click(srv.next, inputs=[session], outputs=item_outputs, api_name="mos_next", show_progress="hidden",
                         concurrency_limit=8).then(**layout)
        c["submit"].click(srv.vote, inputs=[c["item"], c["score"], session], outputs=item_outputs,
                          api_name="mos_vote", concurrency_limit=8, show_progress="hidden").then(**layout)
    with gr.Tab("Rating results", id="mos-results") as c["results_tab"]:
        gr.Markdown(RESULTS_INTRO)
        c["key"] = gr.Textbox(label="Results key", type="password", visible=bool(cfg.results_key))
        c["show"] = gr.Button("Show results")
        c["summary"] = gr.Markdown()
        c["heatmap"] = gr.Image(label="Rating distribution", type="filepath", interactive=False)
        c["files"] = gr.File(label="Downloads", file_count="multiple", interactive=False)
        c["show"].click(srv.results, inputs=[c["key"]], outputs=[c["summary"], c["heatmap"], c["files"]],
                        api_name="mos_results", concurrency_limit=1)  # one writer of the report files
    srv.hide_in_rater_view = before + [c["results_tab"]]
    root = Context.root_block
    if root is not None and srv.hide_in_rater_view:
        root.load(srv.rater_view, None, srv.hide_in_rater_view, js=RATER_JS, api_visibility="private",
                  queue=False, show_progress="hidden")
    c["server"] = srv
    return c
