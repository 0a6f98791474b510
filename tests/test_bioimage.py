"""bioimage.io export: every shipped generator becomes a package that bioimageio.core's own
test passes (the model run on the package's test input reproduces its test output, for the
state dict, TorchScript and ONNX weights), with no network: any connection that is not
loopback fails the test."""
from __future__ import annotations

import socket

import numpy as np
import pytest
import yaml

from sr import zoo

pytest.importorskip("bioimageio.core")

GENERATORS = [e.id for e in zoo.entries("generator") if e.available]


@pytest.fixture
def no_network(monkeypatch):
    tried = []
    real = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1") or "/" in host):
            return real(self, address)
        tried.append(address)
        raise OSError(f"network disabled in this test: {address}")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: (_ for _ in ()).throw(OSError("no DNS in this test")))
    yield tried
    assert not tried, f"validation tried the network: {tried}"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("model_id", GENERATORS)
def test_package_passes_bioimageio_core_test_offline(model_id, tmp_path, no_network):
    from sr import bioimage

    rdf_path = bioimage.export(model_id, tmp_path / model_id)
    rdf = yaml.safe_load(rdf_path.read_text(encoding="utf-8"))
    assert rdf["format_version"].startswith("0.5") and rdf["license"] == "CC-BY-NC-4.0"
    assert {"pytorch_state_dict", "torchscript", "onnx"} <= set(rdf["weights"])
    urls = " ".join(c.get("url", "") for c in rdf["cite"])
    assert "1609.04802" in urls and "2010.04634" in urls
    assert (tmp_path / model_id / "cover.png").is_file()
    card = zoo.get_entry(model_id).card
    assert rdf["config"]["sr"]["card"]["test_psnr"] == card["test_psnr"]
    assert str(card["test_psnr"]) in rdf["description"]
    halo = rdf["outputs"][0]["axes"][2]["halo"]
    assert halo == 4 * zoo.load(model_id).receptive_radius()

    result = bioimage.validate(rdf_path)
    failed = [d for d in result["details"] if d["status"] != "passed"]
    assert result["status"] == "passed", failed
    names = " ".join(d["name"] for d in result["details"])
    for fmt in ("pytorch_state_dict", "torchscript", "onnx"):
        assert f"Reproduce test outputs from test inputs ({fmt})" in names


def test_standalone_architecture_loads_the_weights_without_this_package(tmp_path):
    import importlib.util

    import torch

    from sr import bioimage

    f = tmp_path / "gen.py"
    f.write_text(bioimage.standalone_architecture(), encoding="utf-8")
    assert "huggingface_hub" not in f.read_text(encoding="utf-8")
    spec = importlib.util.spec_from_file_location("gen_standalone", f)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ref = zoo.load("srgan-lite")
    g = mod.Generator(**ref.config).eval()
    g.load_state_dict(ref.state_dict(), strict=True)
    x = torch.rand(1, 1, 20, 20)
    with torch.inference_mode():
        assert np.allclose(g(x).numpy(), ref(x).numpy(), atol=1e-6)


def test_cli_export_refuses_a_baseline(tmp_path, capsys):
    from sr.cli import main

    assert main(["export", "bioimageio", "bicubic", "--out", str(tmp_path / "p")]) == 2
    assert "baseline" in capsys.readouterr().err


def test_gan_exports_at_its_blend(tmp_path):
    from sr import bioimage
    from sr.blend import blended

    gan = next(e.id for e in zoo.entries("generator") if e.available and e.blend_parent)
    rdf_path = bioimage.export(gan, tmp_path / "p", blend=0.5)
    rdf = yaml.safe_load(rdf_path.read_text(encoding="utf-8"))
    assert rdf["config"]["sr"]["blend"] == 0.5
    import torch

    x = np.load(tmp_path / "p" / "test_input.npy")
    with torch.inference_mode():
        want = blended(gan, 0.5).float()(torch.from_numpy(bioimage.preprocess(x))).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "p" / "test_output.npy"), want, atol=1e-5)
