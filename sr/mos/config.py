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

import os
from dataclasses import dataclass, replace
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]


def default_pool() -> Path:
    return Path(os.environ.get("SR_MOS_POOL") or PROJECT_DIR / "data" / "mos_pool")


def default_votes() -> Path:
    return Path(os.environ.get("SR_MOS_VOTES") or PROJECT_DIR / "data" / "mos_votes.csv")


DEFAULT_METHODS = ("nearest", "bicubic", "srgan", "srgan-improved", "msrgan")
ACCESS_MODES = ("open", "invite", "hf-login")


def default_access_file() -> Path:
    return Path(os.environ.get("SR_MOS_ACCESS_FILE") or PROJECT_DIR / "data" / "mos_access.json")


def _bool(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


_bool.__name__ = "boolean (1/0)"


def _methods(raw: str) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(m.strip() for m in raw.split(",") if m.strip()))
    if not out:
        raise ValueError(raw)
    return out


_methods.__name__ = "comma-separated list of model ids"


def _env(name: str, cast, default):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return cast(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a valid {cast.__name__}") from None


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
        timeout = _env("SR_MOS_SESSION_TIMEOUT", float, 1800.0)
        cfg = cls(
            pool=default_pool(),
            votes=default_votes(),
            items=_env("SR_MOS_ITEMS", int, 20),
            min_seconds=_env("SR_MOS_MIN_SECONDS", float, 1.0),
            session_timeout=timeout,
            max_rejects=_env("SR_MOS_MAX_REJECTS", int, 20),
            results_key=os.environ.get("SR_MOS_RESULTS_KEY") or None,
            results_delay=_env("SR_MOS_RESULTS_DELAY", float, timeout),
            hf_repo=os.environ.get("SR_MOS_HF_REPO") or None,
            hf_every=_env("SR_MOS_HF_EVERY", float, 5.0),
            study_id=os.environ.get("SR_MOS_STUDY", "").strip() or "hpa-x4-v1",
            methods=_env("SR_MOS_METHODS", _methods, DEFAULT_METHODS),
            crop=_env("SR_MOS_CROP", int, 256),
            hr_dir=Path(os.environ.get("SR_MOS_HR") or PROJECT_DIR / "examples" / "mos_hr"),
            auto_build=_env("SR_MOS_AUTO_BUILD", _bool, True),
            repeat=_env("SR_MOS_REPEAT", _bool, True),
            access=os.environ.get("SR_MOS_ACCESS", "").strip().lower() or "open",
            sessions_per_hour=_env("SR_MOS_SESSIONS_PER_HOUR", int, 3),
            votes_per_minute=_env("SR_MOS_VOTES_PER_MINUTE", int, 120),
            access_file=default_access_file(),
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
