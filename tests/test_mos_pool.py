"""MOS item pool: `python -m sr mos build` with the tiny zoo, opaque ids, uniform served images."""
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import blobs, make_tiny_zoo
from sr.mos.pool import MANIFEST, Pool, PoolMissing, get_pool, pool_status

TINY_METHODS = ["bicubic", "msrgan", "nearest", "reference", "srgan", "srgan-improved"]


def build_tiny_pool(root: Path, n_images: int = 5, crop: int = 32, extra_args=()) -> Path:
    """Tiny-zoo pool (default models = every available super-resolver) via the CLI."""
    from sr import api, zoo
    from sr.cli import main

    reg, weights = make_tiny_zoo(root / "zoo")
    hr = root / "hr"
    hr.mkdir(parents=True)
    for k in range(n_images):
        Image.fromarray(blobs(crop + 24, crop + 40, seed=k)).save(hr / f"cell_{k}.png")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SR_REGISTRY", str(reg))
        mp.setenv("SR_WEIGHTS_DIR", str(weights))
        zoo.reload_registry(); zoo.clear_shared(); api._fast.clear()  # noqa: E702
        try:
            rc = main(["mos", "build", "--data", str(hr), "--out", str(root / "pool"), "--crop", str(crop),
                       *extra_args])
        finally:
            zoo.reload_registry(); zoo.clear_shared(); api._fast.clear()  # noqa: E702
    assert rc == 0
    return root / "pool"


def png_chunks(data: bytes) -> list[str]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, i = [], 8
    while i < len(data):
        n = struct.unpack(">I", data[i:i + 4])[0]
        out.append(data[i + 4:i + 8].decode("latin-1"))
        i += 12 + n
    return out


_SHARED: dict = {}


def shared_tiny_pool(tmp_path_factory) -> Path:
    """One read-only tiny pool for all MOS test modules of a run (built once: it runs the models)."""
    if "pool" not in _SHARED:
        _SHARED["pool"] = build_tiny_pool(tmp_path_factory.mktemp("mospool"))
    return _SHARED["pool"]


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory):
    return shared_tiny_pool(tmp_path_factory)


def test_manifest_and_files(pool_dir):
    m = json.loads((pool_dir / MANIFEST).read_text())
    rated = [d for d in m["items"] if d["role"] == "rated"]
    cal = [d for d in m["items"] if d["role"] == "calibration"]
    assert sorted({d["method"] for d in rated}) == TINY_METHODS and len(rated) == 4 * 6
    assert {(d["method"], d["label"]) for d in cal} == {("nearest", 1), ("reference", 5)}
    assert {d["image_id"] for d in cal}.isdisjoint({d["image_id"] for d in rated})  # calibration never rated
    files = sorted(p.name for p in pool_dir.iterdir())
    assert files == sorted([MANIFEST] + [d["item_id"] + ".png" for d in m["items"]])
    for d in m["items"]:
        assert re.fullmatch(r"[0-9a-f]{16}", d["item_id"])
        with Image.open(pool_dir / f"{d['item_id']}.png") as im:
            assert im.size == (32, 32) and im.mode == "L" and not im.info
    assert m["mode"] == "L" and m["size"] == [32, 32]


def test_items_are_what_they_claim(pool_dir):
    from sr.degrade import degrade, upscale_baseline

    m = json.loads((pool_dir / MANIFEST).read_text())
    by = {(d["image_id"], d["method"]): np.asarray(Image.open(pool_dir / f"{d['item_id']}.png")) for d in m["items"]}
    img = next(i for i in m["images"] if i["image_id"] == "img001")
    y, x = img["crop_yx"]
    hr = blobs(56, 72, seed=1)[y:y + 32, x:x + 32]
    lo, hi = img["display_window"]  # one display stretch, from the reference, for every version
    assert [lo, hi] == [round(float(v), 3) for v in np.percentile(hr, [0.5, 99.8])]

    def shown(a):
        return np.clip((a.astype(np.float32) - lo) * np.float32(255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)

    assert np.array_equal(by[("img001", "reference")], shown(hr))
    assert np.array_equal(by[("img001", "nearest")], shown(upscale_baseline(degrade(hr), "nearest")))
    assert np.array_equal(by[("img001", "bicubic")], shown(upscale_baseline(degrade(hr), "bicubic")))
    assert not np.array_equal(by[("img001", "srgan")], by[("img001", "bicubic")])


def test_served_png_same_size_no_metadata(pool_dir):
    pool = Pool.load(pool_dir)
    sizes = set()
    for item_id in pool.items:
        data = pool.png_bytes(item_id)
        assert png_chunks(data) == ["IHDR", "IDAT", "IEND"]
        sizes.add(len(data))
    assert len(sizes) == 1  # a nearest-neighbour image is not smaller on the wire than the reference


def test_plan_balanced_distinct_and_spread(pool_dir):
    pool = Pool.load(pool_dir)
    rng = np.random.default_rng(0)
    served: dict = {}
    plans = []
    for _ in range(2):
        plan = pool.plan(12, rng, served)
        for i in plan:
            served[i] = served.get(i, 0) + 1
        plans.append(plan)
        assert len(plan) == len(set(plan)) == 12
        counts = {}
        for i in plan:
            counts[pool.items[i].method] = counts.get(pool.items[i].method, 0) + 1
        assert sorted(counts) == TINY_METHODS and set(counts.values()) == {2}
        assert all(pool.items[a].image_id != pool.items[b].image_id for a, b in zip(plan, plan[1:]))
    assert set(plans[0]).isdisjoint(plans[1])  # least-served items first: two sessions cover the pool
    odd = pool.plan(8, rng, {})
    per = [sum(pool.items[i].method == m for i in odd) for m in TINY_METHODS]
    assert max(per) - min(per) <= 1 and len(pool.plan(999, rng)) == 24
    assert pool.plan(7, np.random.default_rng(1)) != pool.plan(7, np.random.default_rng(2))


def test_build_refuses_overwrite_and_bad_input(pool_dir, tmp_path, capsys):
    from sr.cli import main

    assert main(["mos", "build", "--data", str(pool_dir.parent / "hr"), "--out", str(pool_dir),
                 "--models", "nearest,bicubic"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["mos", "build", "--data", str(pool_dir.parent / "hr"), "--out", str(tmp_path / "p"),
                 "--crop", "30", "--models", "nearest"]) == 2
    assert main(["mos", "build", "--data", str(pool_dir.parent / "hr"), "--out", str(tmp_path / "p"),
                 "--crop", "512", "--models", "nearest"]) == 2
    assert "need at least 2 usable images" in capsys.readouterr().err
    assert main(["mos", "build", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "p")]) == 2
    assert main(["mos", "build", "--data", str(pool_dir.parent / "hr"), "--out", str(tmp_path / "p"),
                 "--models", "msrgan-vgg"]) == 2  # a feature net is not a super-resolver
    assert not (tmp_path / "p" / MANIFEST).exists()


def test_force_rebuild_with_limit_and_explicit_models(tmp_path):
    from sr.cli import main

    hr = tmp_path / "hr"
    hr.mkdir()
    for k in range(4):
        Image.fromarray(blobs(40, 40, c=3, seed=k)).save(hr / f"c{k}.png")
    out = tmp_path / "pool"
    assert main(["mos", "build", "--data", str(hr), "--out", str(out), "--crop", "32", "--models", "bicubic",
                 "--limit", "2"]) == 0
    first = json.loads((out / MANIFEST).read_text())
    assert first["mode"] == "RGB" and sorted({d["method"] for d in first["items"]}) == ["bicubic", "nearest", "reference"]
    assert len({d["image_id"] for d in first["items"] if d["role"] == "rated"}) == 2
    assert main(["mos", "build", "--data", str(hr), "--out", str(out), "--crop", "32", "--models",
                 "nearest,bicubic", "--force"]) == 0
    second = json.loads((out / MANIFEST).read_text())
    assert len(list(out.glob("*.png"))) == len(second["items"]) == 2 + 3 * 3  # old items removed
    assert not {d["item_id"] for d in first["items"]} & {d["item_id"] for d in second["items"]}
    assert get_pool(out).mode == "RGB"


def test_missing_pool_message(tmp_path):
    msg = pool_status(tmp_path / "none")
    assert msg and "python -m sr mos build" in msg
    with pytest.raises(PoolMissing):
        get_pool(tmp_path / "none")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / MANIFEST).write_text("{not json")
    assert "unreadable" in pool_status(tmp_path / "bad")


def test_default_models_skip_unreachable_weights(tmp_path, monkeypatch, capsys):
    import shutil

    from sr import api, zoo
    from sr.cli import main

    reg, weights = make_tiny_zoo(tmp_path / "zoo", ids=("srgan", "srgan-improved"))
    shutil.rmtree(weights / "srgan")  # pinned in the registry, but the weights are not here
    monkeypatch.setenv("SR_REGISTRY", str(reg))
    monkeypatch.setenv("SR_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    zoo.reload_registry(); zoo.clear_shared(); api._fast.clear()  # noqa: E702
    hr = tmp_path / "hr"
    hr.mkdir()
    for k in range(2):
        Image.fromarray(blobs(32, 32, seed=k)).save(hr / f"c{k}.png")
    try:
        assert main(["mos", "build", "--data", str(hr), "--out", str(tmp_path / "p"), "--crop", "32"]) == 0
        assert "skip model srgan" in capsys.readouterr().out
        m = json.loads((tmp_path / "p" / MANIFEST).read_text())
        assert m["methods"] == ["nearest", "bicubic", "srgan-improved", "reference"]
        detail = m["method_details"]["srgan-improved"]  # provenance: what the GAN ran as
        assert set(m["method_details"]) == {"srgan-improved"} and len(detail["sha256"]) == 64
        assert detail["blend"] == api.resolve_blend("srgan-improved", None)
        assert detail["lr_consistency"] == api.resolve_consistency("srgan-improved", None)
        assert main(["mos", "build", "--data", str(hr), "--out", str(tmp_path / "q"), "--crop", "32",
                     "--models", "bicubic,srgan"]) == 2  # asked for explicitly: an error
        assert "srgan" in capsys.readouterr().err and not (tmp_path / "q" / MANIFEST).exists()
    finally:
        zoo.reload_registry(); zoo.clear_shared(); api._fast.clear()  # noqa: E702
