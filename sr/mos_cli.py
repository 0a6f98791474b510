"""``python -m sr mos {build,report,invite,simulate}``: the MOS item pool, results, invitations, simulation.

    python -m sr mos build --data DIR [--models nearest,bicubic,srgan] [--out data/mos_pool]
                           [--crop 256] [--limit N] [--calibration 1] [--force]
    python -m sr mos report [VOTES.csv | FOLDER ...] [--out data/mos_report]
                            [--boot 2000] [--seed 0] [--no-screen] [--json FILE] [--study ID]
    python -m sr mos invite --n N [--out FILE] [--study ID]
    python -m sr mos simulate [--quick] [--seed 0] [--delta 0.3] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from .mos.config import PROJECT_DIR, default_pool, default_votes

    p = argparse.ArgumentParser(prog="python -m sr mos", description="blind MOS study: item pool and results")
    sub = p.add_subparsers(dest="mos_command", required=True)

    b = sub.add_parser("build", help="build the item pool from a folder of HR images")
    b.add_argument("--data", required=True, action="append", help="folder (or file) of HR images; repeatable")
    b.add_argument("--models", default=None,
                   help="comma-separated zoo ids (default: every super-resolver whose weights are available); "
                        "the hidden reference is always added")
    b.add_argument("--out", default=None, help=f"pool folder (default: SR_MOS_POOL or {default_pool()})")
    b.add_argument("--crop", type=int, default=256, help="HR crop size in pixels, a multiple of 4 (default 256)")
    b.add_argument("--limit", type=int, default=None, help="rate at most N images")
    b.add_argument("--calibration", type=int, default=1, help="images kept apart for calibration (default 1)")
    b.add_argument("--precision", choices=["auto", "bf16", "fp32"], default=None)
    b.add_argument("--force", action="store_true", help="replace an existing pool")

    r = sub.add_parser("report", help="MOS table, tests and heatmap from votes CSV file(s)")
    r.add_argument("votes", nargs="*", help=f"votes CSV files or folders of them, e.g. a mirrored dataset "
                                            f"(default: SR_MOS_VOTES or {default_votes()})")
    r.add_argument("--out", default=str(PROJECT_DIR / "data" / "mos_report"),
                   help="folder for the summary CSV/markdown and heatmap PNG (default: %(default)s)")
    r.add_argument("--boot", type=int, default=2000, help="bootstrap replicates (default 2000)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--no-screen", action="store_true", help="do not drop raters by the screening rule")
    r.add_argument("--json", default=None, help="also write the full analysis as JSON here")
    r.add_argument("--study", default=None, help="only votes of this study id (old files have none)")

    i = sub.add_parser("invite", help="one-time invitation tokens (SR_MOS_ACCESS=invite); only hashes are kept")
    i.add_argument("--n", type=int, required=True, help="number of tokens")
    i.add_argument("--out", default=None, help="also write the tokens to this file (one a line)")
    i.add_argument("--study", default=None, help="study id (default: SR_MOS_STUDY)")

    s = sub.add_parser("simulate", help="simulated raters through the real store and statistics")
    s.add_argument("--quick", action="store_true", help="fewer replicates (seconds; for tests)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--delta", type=float, default=0.3, help="MOS difference for the power analysis")
    s.add_argument("--items", type=int, default=20, help="items per session")
    s.add_argument("--json", default=None, help="also write the results as JSON here")
    return p


def _build(a) -> int:
    from .mos.config import default_pool
    from .mos.pool import build_pool

    models = [m.strip() for m in a.models.split(",") if m.strip()] if a.models else None
    if a.limit is not None and a.limit < 1:
        raise ValueError("--limit must be at least 1")
    out = Path(a.out) if a.out else default_pool()
    build_pool(a.data, out, models=models, crop=a.crop, limit=a.limit, calibration=a.calibration,
               force=a.force, precision=a.precision)
    return 0


def _report(a) -> int:
    from .mos.report import to_json, to_markdown, write_report
    from .mos.stats import analyze
    from .mos.store import read_votes

    if a.boot < 100:
        raise ValueError("--boot must be at least 100")
    from .mos.config import default_votes

    read = read_votes(a.votes or [default_votes()])
    if a.study:
        read.votes = [v for v in read.votes if v.study_id == a.study]
    for p in read.problems:
        print(f"warning: {p}", file=sys.stderr)
    analysis = analyze(read.votes, n_boot=a.boot, seed=a.seed, apply_screening=not a.no_screen)
    print(to_markdown(analysis, read), end="")
    paths = write_report(analysis, a.out, read)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(to_json(analysis, read), indent=1) + "\n", encoding="utf-8")
        paths["json"] = Path(a.json)
    print("\nwrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _invite(a) -> int:
    import os

    from .mos.access import AccessFile
    from .mos.config import MosConfig

    cfg = MosConfig.from_env(**({"study_id": a.study} if a.study else {}))
    tokens = AccessFile(cfg.access_file).create_tokens(a.n, cfg.study_id)
    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(tokens) + "\n")
    print("\n".join(tokens))
    print(f"{len(tokens)} one-time token(s) for study {cfg.study_id}; their salted hashes are in "
          f"{cfg.access_file}. Run the app with SR_MOS_ACCESS=invite.", file=sys.stderr)
    return 0


def _simulate(a) -> int:
    from dataclasses import asdict

    from .mos.simulate import run, to_text

    res = run(quick=a.quick, seed=a.seed, delta=a.delta, items=a.items)
    print(to_text(res), end="")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(asdict(res), indent=1, default=str) + "\n", encoding="utf-8")
    return 0


def cli(args) -> int:
    """Entry from ``python -m sr mos ...`` (``args.mos_args``: the remaining argv strings)."""
    argv = list(getattr(args, "mos_args", None) or [])
    a = build_parser().parse_args(argv)
    return {"build": _build, "report": _report, "invite": _invite, "simulate": _simulate}[a.mos_command](a)


def main(argv: list[str] | None = None) -> int:  # python -m sr.mos_cli
    return cli(argparse.Namespace(mos_args=sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
