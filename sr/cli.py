"""Command line: ``python -m sr {zoo,upscale,train,evaluate,bench,publish,mos} ...``.

Errors the user can fix (bad input, unknown model, missing weights) print one line
``error: ...`` on stderr and exit with status 2; nothing else is printed for them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .tile_sizes import DEFAULT_CHUNK, DEFAULT_TILE


def _cmd_zoo(args) -> int:
    from . import zoo

    models = zoo.list_models()
    if args.train_order:
        for e in zoo.train_order():
            print(e.id, e.recipe.get("stage", "-"), ",".join(e.roles) or "-")
        return 0
    if args.write_test_tensors:
        from .testtensors import write

        for m in models:
            if m["kind"] != "baseline" and m["available"]:
                print(write(m["id"]))
        return 0
    if args.json:
        print(json.dumps(models, indent=2))
        return 0
    if args.markdown or args.readme:
        table = zoo_markdown(models, args.bench)
        if args.readme:
            _replace_between_markers(Path(args.readme), "zoo-table", table)
        print(table)
        return 0
    print(f"{'id':20} {'kind':10} {'weights':9} title")
    for m in models:
        state = "-" if m["kind"] == "baseline" else ("pinned" if m["available"] else "none")
        print(f"{m['id']:20} {m['kind']:10} {state:9} {m['title']}")
    return 0


def _bench_speed(path: str | None) -> dict:
    """Median ms of the fast path at 128->512, 1 channel, per model, from a ``sr bench --json``
    result file (results live apart from the code: the caller names the file)."""
    if not path:
        return {}
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no benchmark results at {path}")
    out = {}
    for r in json.loads(path.read_text(encoding="utf-8")).get("rows", []):
        if r.get("input") == "128x128x1" and r.get("path") != "fp32-eager":
            out[r["model"]] = r["median_ms"]
    return out


def zoo_markdown(models: list[dict], bench: str | None = None) -> str:
    """The zoo table: architecture, training, test quality (registry cards) and speed (``bench``)."""
    from .arch import describe

    speed = _bench_speed(bench)
    lines = ["| id | model | architecture | training steps | HPA test PSNR (dB) | HPA test SSIM | "
             "128->512 ms (fast path) | weights |", "|---|---|---|---|---|---|---|---|"]
    for m in models:
        if m["kind"] == "featurenet":
            continue
        card = m.get("card") or {}
        arch = describe(m["arch"]) if m["kind"] == "generator" else m["description"]
        weights = "-" if m["kind"] == "baseline" else ("pinned" if m["available"] else "not trained yet")
        lines.append(f"| `{m['id']}` | {m['title']} | {arch} | {card.get('steps', '-')} | "
                     f"{card.get('test_psnr', '-')} | {card.get('test_ssim', '-')} | {speed.get(m['id'], '-')} | {weights} |")
    return "\n".join(lines)


def _replace_between_markers(path: Path, name: str, text: str) -> None:
    s = path.read_text(encoding="utf-8")
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    if start not in s or end not in s:
        raise ValueError(f"{path} has no {start} ... {end} markers")
    head, rest = s.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{text}\n{end}{tail}", encoding="utf-8")


def _cmd_upscale(args) -> int:
    from . import api, imio, zoo

    from .chunked import cli_upscale, wants_chunked

    if wants_chunked(args):  # OME-Zarr out, chunk by chunk (sr/chunked.py)
        return cli_upscale(args)
    args.model = args.model or (zoo.with_role("cli-default") or ["bicubic"])[0]
    entry = zoo.get_entry(args.model)
    if not entry.upscales:
        raise zoo.ZooError(f"model {args.model!r} is a {entry.kind}, not a super-resolution model")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    for src in args.inputs:
        try:
            image, info = imio.read_image(src)
            result = api.upscale(image, args.model, tile=args.tile, overlap=args.overlap, blend=args.blend,
                                 precision=args.precision, normalize=args.normalize, device=args.device,
                                 consistency=args.consistency)
            dest = out_dir / f"{Path(src).stem}_x4_{args.model}{imio.output_suffix(info, result)}"
            imio.write_image(dest, result, info)
            print(f"{src} -> {dest} ({result.shape[1]}x{result.shape[0]}, {result.dtype})")
        except imio.ImageError as exc:
            print(f"error: {src}: {exc}", file=sys.stderr)
            failures += 1
    return 2 if failures else 0


def _cmd_train(args) -> int:
    from .train import TrainArgs, train

    from .train import default_runs_dir

    targs = TrainArgs(model=args.model, data=args.data, steps=args.steps, out=args.out or default_runs_dir(),
                      batch=args.batch,
                      patch=args.patch, lr=args.lr, precision=args.precision, seed=args.seed,
                      log_every=args.log_every, val_every=args.val_every, ckpt_every=args.ckpt_every,
                      threads=args.threads, init=args.init, decay_from=args.decay_from,
                      max_minutes=args.max_minutes, recipe=args.recipe,
                      export=not args.no_export, export_now=args.export_now, device=args.device)
    print(json.dumps(train(targs)))
    return 0


def _cmd_publish(args) -> int:
    from .publish import publish

    rev = publish(args.model, repo_id=args.repo, token=args.token, private=args.private)
    print(f"published {args.model} -> {args.repo or 'registry repo'} at revision {rev}")
    return 0


def _cmd_card(args) -> int:
    from . import zoo
    from .publish import write_card

    ids = args.models or [e.id for e in zoo.entries() if e.learned and e.available]
    for i in ids:
        print(write_card(i))
    return 0


def _lazy(module: str, func: str):
    def run(args):
        import importlib

        return getattr(importlib.import_module(f".{module}", __package__), func)(args)

    return run


DEVICE_HELP = "auto (CUDA when available), cpu, cuda or cuda:N (default: SR_DEVICE, else auto)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sr", description="4x super-resolution for fluorescence microscopy")
    sub = p.add_subparsers(dest="command", required=True)

    z = sub.add_parser("zoo", help="list the model zoo")
    z.add_argument("--json", action="store_true", help="print the registry as JSON")
    z.add_argument("--markdown", action="store_true", help="print the zoo table (quality, speed)")
    z.add_argument("--readme", default=None, help="also write the table into this README's zoo-table markers")
    z.add_argument("--bench", default=None, help="speed column from this `sr bench --json` file (e.g. docs/bench.json)")
    z.add_argument("--train-order", action="store_true",
                   help="print 'id stage role,...' of every learned model in dependency order (scripts/train_zoo.sh)")
    z.add_argument("--write-test-tensors", action="store_true",
                   help="write test_input.npy / test_output.npy next to every available model's weights")
    z.set_defaults(func=_cmd_zoo)

    u = sub.add_parser("upscale", help="super-resolve image files 4x")
    u.add_argument("inputs", nargs="+")
    u.add_argument("--model", default=None, help="zoo id (default: the registry's cli-default model)")
    u.add_argument("--out", default="sr_out")
    u.add_argument("--tile", type=int, default=DEFAULT_TILE, help="tile size in LR pixels (0: whole image)")
    u.add_argument("--overlap", type=int, default=None, help="tile margin (default: receptive field)")
    u.add_argument("--precision", choices=["auto", "int8", "bf16", "fp16", "fp32"], default=None,
                   help="fp16: CUDA only; int8: CPU, models quantised by `sr quantize`")
    u.add_argument("--device", default=None, help=DEVICE_HELP)
    u.add_argument("--normalize", choices=["auto", "dtype", "percentile"], default="auto")
    u.add_argument("--blend", type=float, default=None,
                   help="GANs: fidelity-detail blend with the pixel-loss parent, 0..1 (default: the model's validated default)")
    u.add_argument("--consistency", type=int, default=None,
                   help="back-projection steps onto the input after the generator, 0 = off (default: the "
                        "model's; on for the GANs, see sr.consistency)")
    u.add_argument("--ome-zarr", action="store_true",
                   help="chunked path: write OME-Zarr (automatic for .zarr, .ome.tif and folder inputs)")
    u.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, help="chunked path: region size in LR pixels (a multiple of --tile; rounded up to whole trunk tiles of 3 x --tile on the CPU fast path)")
    u.add_argument("--workers", type=int, default=None, help="chunked path: on a local Dask cluster of N workers")
    u.add_argument("--scheduler", default=None, help="chunked path: on the Dask cluster at this address")
    u.set_defaults(func=_cmd_upscale)

    bd = sub.add_parser("bench-dask", help="throughput of the chunked path with 1 and 2 local Dask workers")
    bd.add_argument("--side", type=int, default=512, help="LR side of the synthetic image")
    bd.add_argument("--workers", default="1,2")
    bd.add_argument("--model", default="srgan-lite")
    bd.add_argument("--chunk", type=int, default=192)
    bd.add_argument("--json", default=None)
    bd.set_defaults(func=_lazy("chunked", "bench_cli"))

    t = sub.add_parser("train", help="train a zoo model (recipe from the registry)")
    t.add_argument("--model", required=True)
    t.add_argument("--data", required=True, help="folder of training images")
    t.add_argument("--steps", type=int, required=True, help="total steps (resumes if a run exists)")
    t.add_argument("--out", default=None, help="run folder (default: SR_RUNS_DIR or ~/.cache/sr/runs)")
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--patch", type=int, default=96)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"], default="auto",
                   help="auto: bf16 where the CPU/GPU has it; fp16 (CUDA only) trains with a GradScaler")
    t.add_argument("--device", default=None, help=DEVICE_HELP + "; under torchrun on CUDA: one GPU per rank (NCCL)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--log-every", type=int, default=10)
    t.add_argument("--val-every", type=int, default=200)
    t.add_argument("--ckpt-every", type=int, default=50)
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--init", default=None, help="zoo id or folder to start the generator from")
    t.add_argument("--decay-from", type=int, default=None,
                   help="cosine learning-rate decay from this step to 1%% at --steps (default: constant)")
    t.add_argument("--max-minutes", type=float, default=None, help="checkpoint and stop after this long")
    t.add_argument("--no-export", action="store_true", help="do not write weights/<model> at the end")
    t.add_argument("--export-now", action="store_true",
                   help="export the run's chosen checkpoint now, without training (e.g. a run stopped for the day)")
    t.add_argument("--recipe", type=json.loads, default=None,
                   help='JSON overrides of the registry recipe for an experiment, e.g. '
                        '\'{"discriminator": {"head": "gap"}}\' (needs --no-export)')
    t.set_defaults(func=_cmd_train)

    b = sub.add_parser("blend", help="fidelity-detail blend of a GAN with its pixel-loss parent")
    bsub = b.add_subparsers(dest="blend_command", required=True)
    bc = bsub.add_parser("choose", help="measure every blend on the validation fields and pick the default")
    bc.add_argument("model")
    bc.add_argument("--data", default=None, help="the training folder (its validation fields are used)")
    bc.add_argument("--other", action="append", default=None,
                    help="a folder of other fluorescence images (not the test sets) that the default must also "
                         "stay above bicubic on, on average (repeatable)")
    bc.add_argument("--consistency", type=int, default=None,
                    help="back-projection steps onto the input (sr.consistency) to choose with and record "
                         "(default: the model's current number)")
    bc.add_argument("--keep-psnr-share", type=float, default=None,
                    help="the default must keep at least this share of the pixel-loss parent's validation PSNR "
                         "gain over bicubic (a fidelity budget; default sr.blend.KEEP_PSNR_SHARE = 0.8; 0: off)")
    bc.add_argument("--write", action="store_true", help="store the default and the curve in the card")
    bc.add_argument("--from-json", default=None,
                    help="choose from (and with --write record) the JSON an earlier run of this command printed")
    bc.set_defaults(func=_lazy("blend", "choose_cli"))

    e = sub.add_parser("evaluate", help="PSNR/SSIM/time table on a folder of HR images")
    e.add_argument("--data", required=True, action="append", help="folder of HR images (repeatable)")
    e.add_argument("--models", default=None, help="comma-separated ids (default: all available)")
    e.add_argument("--json", default=None, help="write the results as JSON here")
    e.add_argument("--out", default="docs", help="folder for the markdown and CSV tables")
    e.add_argument("--name", default=None, help="name of the table files")
    e.add_argument("--limit", type=int, default=None, help="use only the first N images")
    e.add_argument("--precision", choices=["auto", "int8", "bf16", "fp16", "fp32"], default=None)
    e.add_argument("--device", default=None, help=DEVICE_HELP)
    e.add_argument("--segmentation", action="store_true", help="also nuclei Dice/count on blue images")
    e.add_argument("--baseline", default="bicubic", help="paired differences against this method (default bicubic)")
    e.add_argument("--ssim", choices=["uniform", "gaussian"], default="uniform",
                   help="SSIM window: 7x7 uniform (scikit-image default) or Gaussian sigma 1.5 (SR papers)")
    e.add_argument("--update-cards", action="store_true", help="write test metrics into the model cards")
    e.add_argument("--figure", default=None, help="HR image for the paper-style comparison figure")
    e.add_argument("--figure-roi", action="append", default=[], help="x,y,size of a ROI box (repeatable)")
    e.set_defaults(func=_lazy("evaluate", "cli"))

    b = sub.add_parser("bench", help="latency / throughput benchmark")
    b.add_argument("--json", default=None)
    b.add_argument("--models", default=None)
    b.add_argument("--repeats", type=int, default=7)
    b.add_argument("--quick", action="store_true")
    b.add_argument("--out", default=None, help="write the markdown table here")
    b.add_argument("--device", default=None, help=DEVICE_HELP)
    b.set_defaults(func=_lazy("bench", "cli"))

    pub = sub.add_parser("publish", help="push weights/<id> to the Hugging Face Hub")
    pub.add_argument("model")
    pub.add_argument("--repo", default=None, help="ORG/NAME (default: the registry's repo)")
    pub.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN / cached login)")
    pub.add_argument("--private", action="store_true")
    pub.set_defaults(func=_cmd_publish)

    c = sub.add_parser("card", help="rewrite model cards from the registry")
    c.add_argument("models", nargs="*")
    c.set_defaults(func=_cmd_card)

    ex = sub.add_parser("export", help="export a zoo generator for other tools")
    exsub = ex.add_subparsers(dest="export_format", required=True)
    bio = exsub.add_parser("bioimageio", help="bioimage.io model package (rdf.yaml, TorchScript, ONNX, state dict)")
    bio.add_argument("model", help="zoo id of a generator, or 'all' (one sub-folder each)")
    bio.add_argument("--out", required=True, help="package folder")
    bio.add_argument("--zip", action="store_true", help="also zip the folder (DIR.zip)")
    bio.add_argument("--validate", action="store_true", help="run bioimageio.core's test on the package (offline)")
    bio.add_argument("--blend", type=float, default=None, help="GANs: blend with the pixel-loss parent (default: validated)")
    bio.set_defaults(func=_lazy("bioimage", "cli"))

    q = sub.add_parser("quantize", help="int8 model of a zoo generator (OpenVINO NNCF, calibrated on training images)")
    q.add_argument("models", nargs="+", help="zoo ids of generators, or 'all'")
    q.add_argument("--data", required=True, help="training folder (its validation fields choose what stays out of int8)")
    q.add_argument("--images", type=int, default=120, help="calibration images (whole LR images of the train split)")
    q.set_defaults(func=_lazy("int8", "cli"))

    m = sub.add_parser("mos", help="blind MOS study: build the item pool, report results")
    m.add_argument("mos_args", nargs=argparse.REMAINDER)
    m.set_defaults(func=_lazy("mos_cli", "cli"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .imio import ImageError
    from .zoo import ZooError

    try:
        if hasattr(args, "device"):  # refuse a missing GPU in one line, before any work
            from .device import resolve_device, set_default

            set_default(args.device)
            resolve_device()
        return int(args.func(args) or 0)
    except (ImageError, ZooError, FileNotFoundError, ValueError) as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
