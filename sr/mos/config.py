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

from dataclasses import dataclass, replace
from pathlib import Path

from ..settings import settings

PROJECT_DIR = Path(__file__).resolve().parents[2]


def default_pool() -> Path:
    return settings().mos_pool_path


def default_votes() -> Path:
    return settings().mos_votes_path


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
