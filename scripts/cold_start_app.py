"""Cold start of the real app: its first comparison after launch vs a warm one.

Usage: python scripts/cold_start_app.py [--out docs/cold_start.md] [--json docs/cold_start.json]

Launches ``app.py`` twice with the real zoo and one model cache folder (``SR_CACHE_DIR``, empty
at first): a first start, then a restart that finds the converted/compiled models the first
start left. Each time, as soon as the server answers, it uploads a 128x128 HPA crop (``/load_image``, the
preview a user sees first; untimed), then times the comparison of the default models
(``/compare``, mode hr), then three more (warm).
The first comparison races the app's background warm-up, as a user's first click would.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _loadtest():
    """scripts/loadtest.py (its app launcher and test data), imported by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sr_loadtest", REPO / "scripts" / "loadtest.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def compare_once(client, image: Path, models: list[str]) -> float:
    from gradio_client import handle_file

    t = time.perf_counter()
    client.predict(handle_file(str(image)), "hr", models, 32, 192, api_name="/compare")
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from gradio_client import Client, handle_file

    from sr import zoo
    from sr.runtime import hardware

    lt = _loadtest()
    Server, prepare = lt.Server, lt.prepare
    rows = []
    with tempfile.TemporaryDirectory(prefix="sr-cold-app-") as tmp:
        root = Path(tmp)
        env, images, _, _ = prepare(root, real_zoo=True)
        env["SR_CACHE_DIR"] = str(root / "model_cache")
        models = list(zoo.with_role("app-default"))
        for label in ("first start (empty model cache)", "restart (cache of the first start)"):
            server = Server(root, env)
            try:
                client = Client(server.url, verbose=False, download_files=False)
                # a user uploads first (the preview), then compares: the upload is not timed
                client.predict(handle_file(str(images[0])), None, None, api_name="/load_image")
                first = compare_once(client, images[0], models)
                warm = [compare_once(client, images[0], models) for _ in range(3)]
            finally:
                server.stop()
            w = statistics.median(warm)
            rows.append({"launch": label, "models": ",".join(models), "server_up_s": round(server.startup_s, 1),
                         "first_compare_s": round(first, 2), "warm_compare_s": round(w, 2),
                         "first_over_warm": round(first / w, 2)})
            print(rows[-1], flush=True)
    result = {"command": "python " + " ".join(sys.argv), "hardware": hardware(), "rows": rows}
    lines = ["# Cold start of the app", "", f"Command: `{result['command']}`", "", f"Machine: {result['hardware']}.", "",
             "The image is uploaded (its preview, untimed) as soon as the server answers, then the comparison "
             "of the default models on that 128x128 crop is timed (racing the background warm-up), then three more "
             "(median = warm). Times include the HTTP "
             "round trip and the app's image files.", "",
             "| launch | models | server up s | first compare s | warm compare s | first / warm |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['launch']} | {r['models']} | {r['server_up_s']} | {r['first_compare_s']} | {r['warm_compare_s']} | "
              f"{r['first_over_warm']} |" for r in rows]
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
