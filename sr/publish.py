"""Model folders (``weights/<id>/``, the exact files of each Hub repo) and publishing.

* :func:`export` writes ``config.json`` + ``model.safetensors`` (``save_pretrained``) and the
  model card ``README.md``, and pins the file's sha256 in the registry.
* :func:`render_card` builds the card from the registry entry (one source of truth).
* :func:`publish` pushes a folder to the Hub with ``HfApi.upload_folder`` and pins the
  resulting commit as the model's ``revision``.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import zoo
from .arch import describe

LICENSE_NOTE = ("Trained on Human Protein Atlas images (Kaggle 2018 HPA Image Classification data; "
                "image credit: Human Protein Atlas, Thul PJ et al. 2017, Science 356:eaal3321). "
                "HPA terms (CC BY-NC-ND 4.0 for release v15; check the current terms) and the Kaggle "
                "competition rules apply to these weights.")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


HUB_DATASET = "hpa-kaggle-2018-single-channel"  # HPA Kaggle 2018 images, one stain per image
HUB_TAGS = ["super-resolution", "microscopy", "fluorescence", "srgan", "bioimage-analysis", "image-restoration"]


def hub_metadata(entry: zoo.ModelEntry):
    """The card metadata the Hugging Face Hub shows and filters on (``ModelCardData``):
    licence, library, pipeline tag, tags, datasets, metrics and the test results as model-index."""
    from huggingface_hub import EvalResult, ModelCardData

    card = entry.card or {}
    gen = entry.kind != "featurenet"
    task = ("image-to-image", "4x super-resolution") if gen else ("image-classification", "stain classification")
    tags = (HUB_TAGS if gen else ["microscopy", "fluorescence", "bioimage-analysis", "feature-extractor"]) + (
        [("gan" if entry.recipe.get("stage") == "gan" else "pixel-loss")] if gen else []) + (
        ["batchnorm-free"] if entry.arch.get("norm") == "none" else [])
    wanted = [("test_psnr", "psnr", "PSNR (dB)"), ("test_ssim", "ssim", "SSIM")] if gen else [
        ("test_stain_accuracy", "accuracy", "stain accuracy")]
    n = card.get("test_images")
    results = [EvalResult(task_type=task[0], task_name=task[1], dataset_type=HUB_DATASET,
                          dataset_name=f"HPA Kaggle 2018 single-channel test sample ({n} images, bicubic LR)"
                          if gen else f"HPA Kaggle 2018 single-channel test sample ({n} images)",
                          dataset_split="test", metric_type=mtype, metric_name=mname, metric_value=card[key])
               for key, mtype, mname in wanted if isinstance(card.get(key), (int, float))]
    return ModelCardData(license="cc-by-nc-4.0", library_name="sr-microscopy", pipeline_tag=task[0], tags=tags,
                         datasets=[HUB_DATASET], metrics=[w[1] for w in wanted],
                         model_name=entry.id if results else None, eval_results=results or None)


def render_card(entry: zoo.ModelEntry) -> str:
    card = entry.card or {}
    lines = [
        "---",
        hub_metadata(entry).to_yaml().rstrip(),
        "---",
        "",
        f"# {entry.title} (`{entry.id}`)",
        "",
        entry.description,
        "",
        "## Architecture",
        "",
    ]
    if entry.kind == "generator":
        lines += [f"Generator: {describe(entry.arch)}; 4x, {entry.arch['in_channels']} channel in/out "
                  f"(multi-channel images are processed channel by channel).", ""]
    lines += ["```json", json.dumps(entry.arch, indent=1), "```", "", "## Training recipe", "",
              "```json", json.dumps(entry.recipe, indent=1), "```", ""]
    r = entry.recipe
    if r.get("stage") == "gan":
        content = r.get("content", "mse")
        if content == "mse":
            lines += ["Content loss: pixel-space MSE (SRGAN-MSE). No ImageNet VGG weights could be "
                      "downloaded where this model was trained.", ""]
        else:
            lines += [f"Content loss: features of the zoo model `{content.split(':', 1)[1]}`, a small VGG "
                      "trained from scratch on microscopy (mSRGAN's idea).", ""]
    if card:
        lines += ["## Training run and results", "", "| field | value |", "| --- | --- |"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in card.items() if not isinstance(v, dict)]
        lines += [""]
    lines += ["## Degradation and data", "",
              "LR inputs are made from HR images by Pillow's bicubic resize to 1/4 (`sr.degrade.degrade`).",
              "", LICENSE_NOTE, "", "## Use", "", "```python", "import sr",
              f"out = sr.upscale(image, {entry.id!r})  # numpy in, numpy out", "```", ""]
    k, a = card.get("lr_consistency"), card.get("default_blend")
    if a is not None or k:
        lines += ["`sr.upscale` runs this GAN" + (f" at its default blend {a:g} with `{entry.blend_parent}` "
                  "(`blend=` to change it: 0 = the parent, 1 = the GAN)" if a is not None else "")
                  + (f" followed by {k} back-projection steps onto the input (`sr.consistency`: the result, "
                     "degraded 4x, gives the input back; the detail above the input's resolution stays; "
                     "`consistency=0` turns them off)" if k else "") + ".", ""]
    return "\n".join(lines)


def write_card(model_id: str, folder: Path | None = None) -> Path:
    entry = zoo.get_entry(model_id)
    folder = folder or zoo.weights_dir() / model_id
    path = Path(folder) / zoo.CARD_FILE
    path.write_text(render_card(entry), encoding="utf-8")
    return path


def export(model_id: str, module, card: dict | None = None, folder: Path | None = None) -> Path:
    """Write the model folder and pin its sha256 (and card fields) in the registry."""
    entry = zoo.get_entry(model_id)
    folder = Path(folder or zoo.weights_dir() / model_id)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = dict(module.config)
    if cfg != entry.arch:
        raise zoo.ZooError(f"module config {cfg} is not the registry architecture of {model_id!r}")
    module.save_pretrained(str(folder))
    # save_pretrained writes its own README when a card template exists: replace it with ours
    (folder / zoo.CONFIG_FILE).write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    from .testtensors import write as write_test_tensors

    write_test_tensors(model_id, folder, module)
    sha = zoo.sha256_file(folder / zoo.WEIGHT_FILE)
    from .int8 import FILES

    for name in FILES:  # the int8 form was made from the old weights
        (folder / name).unlink(missing_ok=True)
    zoo.update_entry(model_id, replace_card=bool(card), sha256=sha, int8={}, **({"card": card} if card else {}))
    write_card(model_id, folder)
    return folder


def publish(model_id: str, repo_id: str | None = None, token: str | None = None,
            private: bool = False) -> str:
    """Push ``weights/<id>/`` to the Hub; returns and pins the commit id."""
    from huggingface_hub import HfApi

    entry = zoo.get_entry(model_id)
    folder = zoo.weights_dir() / model_id
    if entry.learned and not (folder / zoo.WEIGHT_FILE).is_file():  # else resolve() would download
        raise zoo.ZooError(f"model {model_id!r}: nothing to publish, {folder / zoo.WEIGHT_FILE} does not exist")
    zoo.resolve(model_id)  # the local files must match the pin before they are published
    from .int8 import FILES as INT8_FILES

    repo_id = repo_id or entry.repo_id
    api = HfApi(endpoint=zoo._endpoint(), token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                                 commit_message=f"{model_id}: weights sha256 {entry.sha256[:12]}",
                                 allow_patterns=[zoo.CONFIG_FILE, zoo.WEIGHT_FILE, zoo.CARD_FILE, *INT8_FILES])
    except Exception as exc:  # HTTP errors (bad token, Hub down), timeouts, unreachable Hub
        raise zoo.ZooError(f"publishing {model_id!r} to {repo_id} at {zoo._endpoint()} failed "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    revision = getattr(info, "oid", None) or str(info).rsplit("/", 1)[-1]
    changes = {"revision": revision}
    if repo_id != entry.repo_id:
        changes["repo"] = repo_id
    zoo.update_entry(model_id, **changes)
    return revision
