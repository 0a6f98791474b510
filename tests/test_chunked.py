"""Chunked large-image path: OME-TIFF / OME-Zarr / Zarr in, OME-Zarr pyramid out, equal to the
in-memory tiled result bit for bit; the same on a 2-worker local Dask cluster."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from sr import api, chunked, imio, omezarr

MODEL = "srgan-lite"  # the real, smallest shipped generator (receptive radius 17)


def _img(rng, h, w, dtype=np.uint8, c=None):
    top = 255 if dtype == np.uint8 else 4000
    base = rng.random((h, w)) if c is None else rng.random((c, h, w))
    return (base * top).astype(dtype)


def test_percentiles_from_histogram_equal_numpy(rng):
    for shape in ((37, 53), (200, 7), (1, 1), (64, 64)):
        a = (rng.random((2,) + shape) ** 3 * 65535).astype(np.uint16)
        a[1] = 7  # a constant channel takes the min/max rule
        src = omezarr.Source("", "mem", "CYX", a.shape, a.dtype)
        src.read = lambda y0, y1, x0, x1, a=a: a[:, y0:y1, x0:x1]
        got = chunked.image_norm(src, "percentile", chunk=16)
        _, want = imio.normalize(np.moveaxis(a, 0, -1), "percentile")
        np.testing.assert_array_equal(got.lo, want.lo)
        np.testing.assert_array_equal(got.hi, want.hi)


def test_ome_tiff_uint8_equals_in_memory_tiled(tmp_path, rng):
    a = _img(rng, 90, 130)
    src = tmp_path / "field.ome.tif"
    tifffile.imwrite(src, a, tile=(32, 32), ome=True,
                     metadata={"axes": "YX", "PhysicalSizeX": 0.4, "PhysicalSizeY": 0.5, "PhysicalSizeXUnit": "µm"})
    dest, = chunked.upscale_chunked(src, tmp_path / "out", MODEL, chunk=64, tile=32, progress=False)
    assert dest.name == f"field_x4_{MODEL}.ome.zarr"
    got = chunked.read_level(dest)[0]
    want = api.upscale(a, MODEL, tile=32)
    assert got.shape == (360, 520) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)
    attrs = json.loads((dest / ".zattrs").read_text())
    ms = attrs["multiscales"][0]
    assert ms["version"] == "0.4" and [a["name"] for a in ms["axes"]] == ["c", "y", "x"]
    assert ms["axes"][2]["unit"] == "micrometer"
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 0.125, 0.1]
    assert ms["datasets"][1]["coordinateTransformations"][0]["scale"] == [1.0, 0.25, 0.2]
    lvl1 = chunked.read_level(dest, 1)
    assert lvl1.shape == (1, 180, 260)
    np.testing.assert_array_equal(lvl1, omezarr.downsample(got[None], np.uint8))


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_openvino_two_stage_chunks_equal_in_memory(tmp_path, rng, monkeypatch, precision):
    """The OpenVINO fast path (two-stage tiling; int8 where the CPU has it): chunked regions of
    whole trunk tiles give the in-memory result bit for bit."""
    pytest.importorskip("openvino")
    monkeypatch.setenv("SR_BACKEND", "openvino")
    api._fast.clear()
    a = _img(rng, 150, 110)
    src = tmp_path / "f.ome.tif"
    tifffile.imwrite(src, a, ome=True)
    dest, = chunked.upscale_chunked(src, tmp_path / "out", MODEL, chunk=40, tile=20, precision=precision,
                                    progress=False)  # chunk rounded up to 60 (3 x 20)
    assert api.fast_model(MODEL, precision).stages() is not None
    np.testing.assert_array_equal(chunked.read_level(dest)[0], api.upscale(a, MODEL, tile=20, precision=precision))
    api._fast.clear()


def test_ome_zarr_reader_sees_the_pyramid(tmp_path, rng):
    ome_zarr = pytest.importorskip("ome_zarr.reader")
    from ome_zarr.io import parse_url

    a = _img(rng, 40, 300)
    src = tmp_path / "wide.tif"
    tifffile.imwrite(src, a)
    dest, = chunked.upscale_chunked(src, tmp_path / "out", MODEL, chunk=64, tile=64, progress=False)
    node = next(iter(ome_zarr.Reader(parse_url(str(dest)))()))
    assert [tuple(d.shape) for d in node.data][:2] == [(1, 160, 1200), (1, 80, 600)]


def test_uint16_channel_stack_percentile_equals_in_memory(tmp_path, rng):
    a = _img(rng, 70, 50, np.uint16, c=2)
    src = tmp_path / "stack.ome.tif"
    tifffile.imwrite(src, a, ome=True, metadata={"axes": "CYX", "Channel": {"Name": ["dapi", "gfp"]}})
    dest, = chunked.upscale_chunked(src, tmp_path / "out", MODEL, chunk=32, tile=32, progress=False)
    got = np.moveaxis(chunked.read_level(dest), 0, -1)
    want = api.upscale(np.moveaxis(a, 0, -1), MODEL, tile=32)  # (H,W,C), percentile normalisation
    np.testing.assert_array_equal(got, want)
    attrs = json.loads((dest / ".zattrs").read_text())
    assert [c["label"] for c in attrs["omero"]["channels"]] == ["dapi", "gfp"]


def test_ome_zarr_and_plain_zarr_inputs(tmp_path, rng):
    import zarr

    a = _img(rng, 48, 40)
    ome = tmp_path / "in.ome.zarr"
    omezarr.create(ome, (1, 48, 40), np.uint8, 16, (0.8, 0.8), "micrometer")
    omezarr.write_region(ome, 0, a[None], 0, 0)
    plain = tmp_path / "plain.zarr"
    z = zarr.open_array(str(plain), mode="w", shape=a.shape, chunks=(16, 16), dtype=np.uint8)
    z[:] = a
    want = api.upscale(a, MODEL, tile=32)
    for p in (ome, plain):
        dest, = chunked.upscale_chunked(p, tmp_path / "out", MODEL, chunk=32, tile=32, progress=False)
        np.testing.assert_array_equal(chunked.read_level(dest)[0], want)
    scale = json.loads((tmp_path / "out" / f"in_x4_{MODEL}.ome.zarr" / ".zattrs").read_text())[
        "multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == [1.0, 0.2, 0.2]


def test_refusals(tmp_path, rng):
    src = tmp_path / "t.tif"
    tifffile.imwrite(src, _img(rng, 16, 16))
    with pytest.raises(ValueError, match="multiple"):
        chunked.upscale_chunked(src, tmp_path / "o", MODEL, chunk=100, tile=64, progress=False)
    with pytest.raises(imio.ImageError, match="more than one plane"):
        tifffile.imwrite(tmp_path / "z.ome.tif", _img(rng, 16, 16, c=40), ome=True, metadata={"axes": "ZYX"})
        chunked.upscale_chunked(tmp_path / "z.ome.tif", tmp_path / "o", MODEL, chunk=64, tile=64, progress=False)


@pytest.mark.timeout(300)
def test_two_worker_local_cluster_equals_single_process(tmp_path, rng):
    pytest.importorskip("distributed")
    plate = tmp_path / "plate"
    plate.mkdir()
    for i, (h, w) in enumerate(((70, 90), (40, 64))):
        tifffile.imwrite(plate / f"well{i}.tif", _img(rng, h, w))
    single = chunked.upscale_chunked(plate, tmp_path / "single", MODEL, chunk=32, tile=32, progress=False)
    client = chunked.make_client(workers=2, processes=False)
    try:
        assert len(client.scheduler_info()["workers"]) == 2
        multi = chunked.upscale_chunked(plate, tmp_path / "multi", MODEL, chunk=32, tile=32, client=client,
                                        progress=False)
    finally:
        chunked.close_client(client)
    assert [d.name for d in multi] == [d.name for d in single] == [f"well0_x4_{MODEL}.ome.zarr",
                                                                    f"well1_x4_{MODEL}.ome.zarr"]
    for s, m in zip(single, multi):
        for level in range(len(json.loads((s / ".zattrs").read_text())["multiscales"][0]["datasets"])):
            np.testing.assert_array_equal(chunked.read_level(m, level), chunked.read_level(s, level))


def test_cli_upscale_routes_ome_tiff_to_the_chunked_path(tmp_path, rng, capsys):
    from sr.cli import main

    a = _img(rng, 40, 36)
    src = tmp_path / "cells.ome.tif"
    tifffile.imwrite(src, a, ome=True)
    assert main(["upscale", str(src), "--model", MODEL, "--out", str(tmp_path / "o"), "--tile", "32",
                 "--chunk", "64"]) == 0
    assert "OME-Zarr pyramid" in capsys.readouterr().out
    np.testing.assert_array_equal(chunked.read_level(tmp_path / "o" / f"cells_x4_{MODEL}.ome.zarr")[0],
                                  api.upscale(a, MODEL, tile=32))


@pytest.mark.timeout(300)
def test_bench_dask_reports_throughput(tmp_path):
    pytest.importorskip("distributed")
    rows = chunked.bench_dask(side=64, workers=(1, 2), model=MODEL, chunk=32, out_dir=tmp_path, processes=False)
    assert [r["workers"] for r in rows] == [1, 2] and all(r["lr_mpx_per_s"] > 0 for r in rows)


def test_tiff_sources_read_regions_lazily(tmp_path, rng):
    a = _img(rng, 50, 70, c=3)
    tifffile.imwrite(tmp_path / "plain.tif", a)  # uncompressed, contiguous: memory-mapped
    tifffile.imwrite(tmp_path / "tiled.tif", a, tile=(16, 16), compression="zlib")
    tifffile.imwrite(tmp_path / "rgb.tif", np.moveaxis(a, 0, -1), photometric="rgb")  # YXS
    kinds = {}
    for name in ("plain.tif", "tiled.tif", "rgb.tif"):
        src = omezarr.open_source(tmp_path / name)
        kinds[name] = src.kind
        assert src.shape == (3, 50, 70)
        np.testing.assert_array_equal(src.read(5, 40, 10, 33), a[:, 5:40, 10:33])
        src.close()
    assert kinds["plain.tif"] == "tiff-contiguous" and kinds["tiled.tif"] == "tiff"


def test_memory_is_bounded_by_the_chunk_not_the_image(tmp_path, rng):
    """numpy buffers (what tracemalloc sees) stay far below the size of the result itself."""
    import tracemalloc

    side = 512
    src = tmp_path / "big.ome.tif"
    tifffile.imwrite(src, _img(rng, side, side), tile=(32, 32), ome=True)
    tifffile.imwrite(tmp_path / "small.tif", _img(rng, 40, 40))
    chunked.upscale_chunked(tmp_path / "small.tif", tmp_path / "warm", MODEL, chunk=32, tile=32, progress=False)
    tracemalloc.start()
    try:
        # regions of whole trunk tiles (3 x 16 = 48 LR pixels: chunk 32 is rounded up to it)
        dest, = chunked.upscale_chunked(src, tmp_path / "out", MODEL, chunk=32, tile=16, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    result_bytes = (4 * side) ** 2  # uint8 result; its float32 form would be 4x this
    assert peak < result_bytes / 2, f"peak {peak / 2**20:.1f} MiB for a {result_bytes / 2**20:.1f} MiB result"
    assert chunked.read_level(dest).shape == (1, 4 * side, 4 * side)
