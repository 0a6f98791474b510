"""Every ``SR_*`` environment variable, read in this one place.

:func:`settings` returns a frozen :class:`Settings` built from the environment *now* (cheap; no
caching, so a changed environment, e.g. in a test, is seen at once). Each field names its
variable, default and meaning; the README's settings table is checked against :func:`table`
by a test. Variables of other tools (``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_OFFLINE``,
``GRADIO_SERVER_*``, ``SPACE_ID``) are read where they are used.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]


def _var(env: str, default, doc: str, cast=None):
    return field(default=default, metadata={"env": env, "doc": doc, "cast": cast})


def _bool(raw: str) -> bool:
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


_bool.__name__ = "boolean (1/0)"


@dataclass(frozen=True)
class Settings:
    # models and inference
    registry: str | None = _var("SR_REGISTRY", None, "registry file (default `sr/zoo.json`)")
    weights_dir: str | None = _var("SR_WEIGHTS_DIR", None, "folder of the model folders (default `weights/`)")
    hub_org: str | None = _var("SR_HUB_ORG", None, "Hub organisation of the zoo repos (default: the registry's)")
    hub_probe_timeout: float = _var("SR_HUB_PROBE_TIMEOUT", 3.0, "seconds of the one Hub reachability probe", float)
    precision: str = _var("SR_PRECISION", "auto", "`auto`, `int8` (CPU inference, OpenVINO), `bf16`, `fp16` (CUDA only) or `fp32` inference/training precision")
    device: str = _var("SR_DEVICE", "auto", "`auto` (CUDA when available), `cpu` or `cuda`: where inference and training run")
    backend: str = _var("SR_BACKEND", "auto", "`auto` (OpenVINO when installed), `openvino` or `torch`")
    threads: int | None = _var("SR_THREADS", None, "torch intra-op threads (default: torch's)", int)
    cache_dir: str | None = _var("SR_CACHE_DIR", None, "converted/compiled inference models (default `~/.cache/sr/compiled`)")
    cache_max_bytes: int = _var("SR_CACHE_MAX_BYTES", 2 * 2**30, "that cache on disk (least recently used evicted first)", int)
    compile: bool = _var("SR_COMPILE", False, "`1`: torch.compile the fast path (torch backend)", _bool)
    max_pixels: int = _var("SR_MAX_PIXELS", 4096 * 4096, "largest input image (H x W) read", int)
    runs_dir: str | None = _var("SR_RUNS_DIR", None, "training run state (default `~/.cache/sr/runs`)")
    decode_budget_bytes: int = _var("SR_DECODE_BUDGET_BYTES", 768 * 2**20, "bytes all concurrent decodes may hold (3x decoded size each)", int)
    decode_wait_s: float = _var("SR_DECODE_WAIT_S", 20.0, "seconds a decode waits for room in that budget", float)
    # the app
    app_max_file_size: str = _var("SR_APP_MAX_FILE_SIZE", "64mb", "upload limit (Gradio syntax)")
    app_max_output_pixels: int = _var("SR_APP_MAX_OUTPUT_PIXELS", 2048 * 2048, "largest result (H x W) the app computes", int)
    app_concurrency: int = _var("SR_APP_CONCURRENCY", 1, "inference jobs at once", int)
    app_tmp: str | None = _var("SR_APP_TMP", None, "folder of the run files (default `$TMPDIR/sr-app`)")
    app_warmup: bool = _var("SR_APP_WARMUP", True, "`0`: do not load the default models at start", _bool)
    app_warmup_wait: float = _var("SR_APP_WARMUP_WAIT", 60.0, "seconds the server waits at most, before it listens, for the default models to be warm (`0`: listen at once)", float)
    app_max_decoded_bytes: int = _var("SR_APP_MAX_DECODED_BYTES", 256 * 2**20, "decoded size of one image in the app", int)
    url_guard_max_body: int = _var("SR_URL_GUARD_MAX_BODY", 32 * 2**20, "largest non-upload request body the URL guard reads", int)
    runs_max_bytes: int = _var("SR_RUNS_MAX_BYTES", 2 * 2**30, "all app run folders together (oldest evicted first)", int)
    runs_session_max_bytes: int = _var("SR_RUNS_SESSION_MAX_BYTES", 512 * 2**20, "run folders of one session", int)
    uploads_max_bytes: int = _var("SR_UPLOADS_MAX_BYTES", 2 * 2**30, "the upload cache (oldest evicted first)", int)
    uploads_client_max_bytes: int = _var("SR_UPLOADS_CLIENT_MAX_BYTES", 2**30, "uploads of one client per window", int)
    uploads_client_window_s: float = _var("SR_UPLOADS_CLIENT_WINDOW_S", 3600.0, "that window (seconds)", float)
    quota_min_age_s: float = _var("SR_QUOTA_MIN_AGE_S", 30.0, "run folders younger than this are never evicted", float)
    live_side: int = _var("SR_LIVE_SIDE", 128, "long side of the webcam frame the live model sees", int)
    live_time_limit: int = _var("SR_LIVE_TIME_LIMIT", 120, "seconds one webcam stream may run", int)
    live_concurrency: int = _var("SR_LIVE_CONCURRENCY", 2, "webcam streams at once", int)
    video_max_frames: int = _var("SR_VIDEO_MAX_FRAMES", 900, "longest video (frames)", int)
    video_max_pixels: int = _var("SR_VIDEO_MAX_PIXELS", 640 * 480, "largest video frame (H x W)", int)
    video_probe_timeout_s: float = _var("SR_VIDEO_PROBE_TIMEOUT_S", 5.0, "seconds a video probe may take", float)
    # the MOS study
    mos_pool: str | None = _var("SR_MOS_POOL", None, "MOS item pool folder (default `data/mos_pool`)")
    mos_votes: str | None = _var("SR_MOS_VOTES", None, "votes CSV (default `data/mos_votes.csv`)")
    mos_items: int = _var("SR_MOS_ITEMS", 20, "items rated per session", int)
    mos_min_seconds: float = _var("SR_MOS_MIN_SECONDS", 1.0, "least time between showing an item and its vote", float)
    mos_session_timeout: float = _var("SR_MOS_SESSION_TIMEOUT", 1800.0, "idle seconds after which a session closes", float)
    mos_max_rejects: int = _var("SR_MOS_MAX_REJECTS", 20, "rejected votes after which a session closes", int)
    mos_results_key: str | None = _var("SR_MOS_RESULTS_KEY", None, "if set, the results tab needs this key (then live)")
    mos_results_delay: float | None = _var("SR_MOS_RESULTS_DELAY", None, "without a key: include raters idle this long (default: the session timeout)", float)
    mos_hf_repo: str | None = _var("SR_MOS_HF_REPO", None, "mirror the votes CSV to this private HF dataset repo")
    mos_hf_every: float = _var("SR_MOS_HF_EVERY", 5.0, "minutes between mirror commits", float)
    mos_study: str = _var("SR_MOS_STUDY", "hpa-x4-v1", "study id written into every vote row")
    mos_methods: str | None = _var("SR_MOS_METHODS", None, "methods of an auto-built pool, comma-separated (default: nearest, bicubic, srgan, srgan-improved, msrgan)")
    mos_crop: int = _var("SR_MOS_CROP", 256, "HR crop size of an auto-built pool", int)
    mos_hr: str | None = _var("SR_MOS_HR", None, "HR images for the auto-built pool (default `examples/mos_hr`)")
    mos_auto_build: bool = _var("SR_MOS_AUTO_BUILD", True, "build the pool in the background when there is none", _bool)
    mos_repeat: bool = _var("SR_MOS_REPEAT", True, "one hidden repeated item per session (P.808 consistency check)", _bool)
    mos_access: str = _var("SR_MOS_ACCESS", "open", "`open`, `invite` or `hf-login`")
    mos_sessions_per_hour: int = _var("SR_MOS_SESSIONS_PER_HOUR", 3, "open mode: sessions one client may start per hour", int)
    mos_votes_per_minute: int = _var("SR_MOS_VOTES_PER_MINUTE", 120, "study-wide cap on accepted votes per minute", int)
    mos_access_file: str | None = _var("SR_MOS_ACCESS_FILE", None, "salted hashes of invite tokens / accounts (default `data/mos_access.json`)")

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        env = os.environ if env is None else env
        values = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"], "")
            if raw is None or not str(raw).strip():
                continue
            cast = f.metadata["cast"] or str
            try:
                values[f.name] = cast(str(raw).strip())
            except ValueError:
                raise ValueError(f"{f.metadata['env']}={raw!r} is not a valid {cast.__name__}") from None
        return cls(**values)

    # derived paths
    @property
    def runs_path(self) -> Path:
        return Path(self.runs_dir) if self.runs_dir else Path.home() / ".cache" / "sr" / "runs"

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path.home() / ".cache" / "sr" / "compiled"

    @property
    def app_tmp_path(self) -> Path:
        return Path(self.app_tmp) if self.app_tmp else Path(tempfile.gettempdir()) / "sr-app"

    @property
    def mos_pool_path(self) -> Path:
        return Path(self.mos_pool) if self.mos_pool else PROJECT_DIR / "data" / "mos_pool"

    @property
    def mos_votes_path(self) -> Path:
        return Path(self.mos_votes) if self.mos_votes else PROJECT_DIR / "data" / "mos_votes.csv"

    @property
    def mos_hr_path(self) -> Path:
        return Path(self.mos_hr) if self.mos_hr else PROJECT_DIR / "examples" / "mos_hr"

    @property
    def mos_access_file_path(self) -> Path:
        return Path(self.mos_access_file) if self.mos_access_file else PROJECT_DIR / "data" / "mos_access.json"


def settings(env: dict | None = None) -> Settings:
    """The settings as the environment says now (``env``: another mapping instead)."""
    if env is not None:
        return Settings.from_env(env)
    key = _environ_key()
    return Settings.from_env() if key is None else _from_raw(key)


_RAW_KEYS: tuple | None = None


def _environ_key() -> tuple | None:
    """The raw values of the ``SR_*`` variables, read from CPython's underlying mapping of
    ``os.environ`` (``_data``): one dict lookup each instead of decoding the variable through
    ``os.environ`` (the fast path asks for the settings four times per image: ~0.06 ms each
    that way, ~1.5 % of the lite model's 15 ms). ``None`` where the mapping is not there."""
    global _RAW_KEYS
    data, encode = getattr(os.environ, "_data", None), getattr(os.environ, "encodekey", None)
    if not isinstance(data, dict) or encode is None:
        return None
    if _RAW_KEYS is None:
        _RAW_KEYS = tuple(encode(name) for name in variables())
    return tuple(map(data.get, _RAW_KEYS))


@lru_cache(maxsize=16)
def _from_raw(key: tuple) -> Settings:
    """Settings from raw values (the key itself, so a change of the environment while this
    runs cannot file settings under another key); frozen, so one instance may be shared."""
    decode = os.environ.decodevalue
    return Settings.from_env({name: decode(raw) for name, raw in zip(variables(), key) if raw is not None})


def variables() -> list[str]:
    """Every ``SR_*`` variable the package reads."""
    return [f.metadata["env"] for f in fields(Settings)]


def table() -> str:
    """The settings as a Markdown table (variable, default, meaning)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for f in fields(Settings):
        default = "unset" if f.default is None else f"`{f.default}`"
        lines.append(f"| `{f.metadata['env']}` | {default} | {f.metadata['doc']} |")
    return "\n".join(lines)
