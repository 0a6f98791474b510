import json
import time

import pytest
import torch

import sr
from sr import zoo


def test_registry_has_one_entry_per_id():
    ids = [e.id for e in zoo.entries()]
    assert len(ids) == len(set(ids))
    for e in zoo.entries("generator"):
        from sr.arch import Generator
        Generator(**e.arch)  # every registry config builds


def test_local_weights_load_without_network(tiny_zoo, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    zoo.reset_hub_probe()
    t = time.time()
    m = sr.load("srgan-improved")
    assert time.time() - t < 5
    assert not m.training and m.config["norm"] == "none"
    assert zoo._probe_results == {}  # the Hub was never asked


def test_checksum_mismatch_is_an_error(tiny_zoo):
    reg, weights = tiny_zoo
    f = weights / "srgan" / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(zoo.ZooError, match="checksum mismatch"):
        sr.load("srgan")


def test_strict_loading_rejects_missing_key(tiny_zoo):
    from safetensors.torch import load_file, save_file
    reg, weights = tiny_zoo
    f = weights / "srgan" / "model.safetensors"
    sd = load_file(str(f))
    sd.pop(next(iter(sd)))
    save_file(sd, str(f))
    doc = json.loads(reg.read_text())
    for m in doc["models"]:
        if m["id"] == "srgan":
            m["sha256"] = zoo.sha256_file(f)
    reg.write_text(json.dumps(doc))
    zoo.reload_registry()
    with pytest.raises(zoo.ZooError, match="do not match"):
        sr.load("srgan")


def test_unpinned_model_says_not_trained(tiny_zoo):
    with pytest.raises(zoo.ZooError, match="no published weights"):
        zoo.resolve("srresnet")


def test_unknown_and_baseline():
    with pytest.raises(zoo.ZooError, match="unknown model"):
        zoo.get_entry("nope")
    assert zoo.get_entry("bicubic").available


def test_hub_org_configurable(monkeypatch):
    monkeypatch.setenv("SR_HUB_ORG", "my-lab")
    assert zoo.get_entry("srgan").repo_id == "my-lab/srgan-hpa-x4"


def test_package_import_is_light():
    import subprocess, sys
    code = "import sys, sr; print('torch' in sys.modules, 'gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_every_shipped_model_passes_its_test_tensors():
    """bioimage.io-style: each model in weights/ reproduces its committed test output."""
    from sr import testtensors, zoo

    shipped = [e.id for e in zoo.entries() if e.learned and e.available]
    assert shipped
    for mid in shipped:
        assert testtensors.check(mid) <= testtensors.ATOL, mid
