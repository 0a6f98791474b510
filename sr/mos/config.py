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
=========================== ===================================================== =============

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
        )
        if overrides:
            if "pool" in overrides:
                overrides["pool"] = Path(overrides["pool"])
            if "votes" in overrides:
                overrides["votes"] = Path(overrides["votes"])
            cfg = replace(cfg, **overrides)
        if cfg.items < 1:
            raise ValueError("SR_MOS_ITEMS must be at least 1")
        return cfg
