"""Blind MOS (mean opinion score) study: absolute category rating with hidden anchors.

Follows ITU-T P.910 ACR-HR practice and the SRGAN MOS study (Ledig et al. 2017):

* :mod:`sr.mos.pool`: build the item pool from a folder of HR images (every method's 4x
  result of the same crop, plus the HR crop itself as the hidden reference) under opaque
  random item ids; only the server-side manifest maps item id -> (image, method).
* :mod:`sr.mos.session`: rater sessions (calibration, balanced random order, server-side
  vote validation, rate limit).
* :mod:`sr.mos.store`: the votes CSV (one locked, fsynced append per vote), its tolerant
  reader, and optional mirroring to a Hugging Face dataset repo.
* :mod:`sr.mos.stats` / :mod:`sr.mos.report`: MOS with two-level bootstrap CIs, rater
  screening (hidden anchors and a hidden repeat, ITU-T P.808), pairwise tests, the rating
  heatmap and exports.
* :mod:`sr.mos.autobuild`: with no pool, build the study's pool in the background at app start.
* :mod:`sr.mos.access`: who may start a session (open with per-client limits, invite tokens,
  Hugging Face login), storing only salted hashes.
* :mod:`sr.mos.simulate`: simulated raters through the real store and statistics (power,
  false-positive rate).

The Gradio tabs live in :mod:`sr.app.mos_tab`, the command line in :mod:`sr.mos_cli`.
"""
from .config import MosConfig

__all__ = ["MosConfig"]
