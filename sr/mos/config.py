"""Configuration of the MOS study, from environment variables (overridable in code).

=========================== ===================================================== =============
variable                    meaning                                               default
=========================== ===================================================== =============
``SR_MOS_POOL``             item pool folder (``python -m sr mos build``)          ``data/mos_pool``
``SR_MOS_VOTES``            votes CSV                                              ``data/mos_votes.csv``
``SR_MOS_ITEMS``            items rated per session                                20
``SR_MOS_MIN_SECONDS``      least time between showing an item and its vote        1.0
``SR_MOS_SESSION_TIMEOUT``  idle seconds after which a session can no longer vote  1800
``SR_MOS_MAX_REJECTS``      rejected votes after which a session is closed         20
``SR_MOS_RESULTS_KEY``      if set, the results tab needs this key (then live)     unset
``SR_MOS_RESULTS_DELAY``    without a key: include raters idle for this long       session timeout
``SR_MOS_HF_REPO``          mirror the votes CSV to this HF dataset repo           unset
``SR_MOS_HF_EVERY``         minutes between mirror commits                         5
``SR_MOS_STUDY``            study id written into every vote row                   ``hpa-x4-v1``
``SR_MOS_METHODS``          methods of an auto-built pool (comma-separated)        see below
``SR_MOS_CROP``             HR crop size of an auto-built pool                     256
``SR_MOS_HR``               HR images for the auto-built pool                      ``examples/mos_hr``
``SR_MOS_AUTO_BUILD``       build the pool in the background when there is none    1
``SR_MOS_REPEAT``           one hidden repeated item per session (P.808 check)     1
``SR_MOS_ACCESS``           ``open`` | ``invite`` | ``hf-login``                   ``open``
``SR_MOS_SESSIONS_PER_HOUR`` open mode: sessions one client may start per hour     3
``SR_MOS_VOTES_PER_MINUTE`` study-wide cap on accepted votes per minute            120
``SR_MOS_ACCESS_FILE``      salted hashes of invite tokens / accounts (JSON)       ``data/mos_access.json``
=========================== ===================================================== =============

A *study* is ``study_id`` + ``methods`` + ``crop`` + ``items``; the default methods are
:data:`DEFAULT_METHODS` (those without weights are skipped when the pool is built).

Relative defaults are under the project root (``data/`` is ignored by git).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..settings import settings

PROJECT_DIR = Path(__file__).resolve().parents[2]


def default_pool() -> Path:
    return settings().mos_pool_path


def default_votes() -> Path:
    return settings().mos_votes_path


DEFAULT_METHODS = ("nearest", "bicubic", "srgan", "srgan-improved", "msrgan")
ACCESS_MODES = ("open", "invite", "hf-login")


def default_access_file() -> Path:
    return settings().mos_access_file_path


def _methods(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return DEFAULT_METHODS
    out = tuple(dict.fromkeys(m.strip() for m in raw.split(",") if m.strip()))
    if not out:
        raise ValueError(f"SR_MOS_METHODS={raw!r} is not a valid comma-separated list of model ids")
    return out


@dataclass(frozen=True)
class MosConfig:
    pool: Path
    votes: Path
    items: int = 20
    min_seconds: float = 1.0
    session_timeout: float = 1800.0
    max_rejects: int = 20
    results_key: str | None = None
    results_delay: float = 1800.0
    hf_repo: str | None = None
    hf_every: float = 5.0
    study_id: str = "hpa-x4-v1"
    methods: tuple[str, ...] = DEFAULT_METHODS
    crop: int = 256
    hr_dir: Path = PROJECT_DIR / "examples" / "mos_hr"
    auto_build: bool = True
    repeat: bool = True
    access: str = "open"
    sessions_per_hour: int = 3
    votes_per_minute: int = 120
    access_file: Path = PROJECT_DIR / "data" / "mos_access.json"

    @classmethod
    def from_env(cls, **overrides) -> "MosConfig":
        s = settings()
        cfg = cls(
            pool=s.mos_pool_path,
            votes=s.mos_votes_path,
            items=s.mos_items,
            min_seconds=s.mos_min_seconds,
            session_timeout=s.mos_session_timeout,
            max_rejects=s.mos_max_rejects,
            results_key=s.mos_results_key,
            results_delay=s.mos_session_timeout if s.mos_results_delay is None else s.mos_results_delay,
            hf_repo=s.mos_hf_repo,
            hf_every=s.mos_hf_every,
            study_id=s.mos_study,
            methods=_methods(s.mos_methods),
            crop=s.mos_crop,
            hr_dir=s.mos_hr_path,
            auto_build=s.mos_auto_build,
            repeat=s.mos_repeat,
            access=s.mos_access.strip().lower(),
            sessions_per_hour=s.mos_sessions_per_hour,
            votes_per_minute=s.mos_votes_per_minute,
            access_file=s.mos_access_file_path,
        )
        if overrides:
            if "pool" in overrides:
                overrides["pool"] = Path(overrides["pool"])
            for k in ("votes", "hr_dir", "access_file"):
                if k in overrides:
                    overrides[k] = Path(overrides[k])
            if "methods" in overrides:
                overrides["methods"] = tuple(overrides["methods"])
            cfg = replace(cfg, **overrides)
        if cfg.items < 1:
            raise ValueError("SR_MOS_ITEMS must be at least 1")
        if cfg.access not in ACCESS_MODES:
            raise ValueError(f"SR_MOS_ACCESS={cfg.access!r}: use one of {', '.join(ACCESS_MODES)}")
        if cfg.sessions_per_hour < 1 or cfg.votes_per_minute < 1:
            raise ValueError("SR_MOS_SESSIONS_PER_HOUR and SR_MOS_VOTES_PER_MINUTE must be at least 1")
        if not cfg.study_id.replace("-", "").replace("_", "").replace(".", "").isalnum() or len(cfg.study_id) > 64:
            raise ValueError(f"SR_MOS_STUDY={cfg.study_id!r}: letters, digits, - _ . only (at most 64)")
        return cfg
