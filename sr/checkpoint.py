"""Resumable training state in safetensors + JSON (never pickle).

Model and optimizer tensors go to ``state.safetensors`` under flat keys; everything else
(step, param groups, wall time, ...) goes to ``state.json``. Both are written to temporary
files and renamed, so a crash never leaves a half-written checkpoint.

Portable between devices: tensors are written from the CPU, and :func:`load` copies them into
the modules wherever they live (a run saved on a GPU resumes on a CPU and vice versa); the
optimizer state follows its parameters' device.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def _flatten_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    sd = opt.state_dict()
    meta[prefix] = {"param_groups": sd["param_groups"], "scalars": {}}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{pid}.{name}"] = value.detach().cpu().contiguous().clone()
            else:
                meta[prefix]["scalars"][f"{pid}.{name}"] = value


def _restore_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for key, value in meta[prefix]["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta[prefix]["param_groups"]})


def save(folder: str | Path, modules: dict, optimizers: dict, info: dict) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict = {}
    meta: dict = {"info": info, "optimizers": {}}
    for name, module in modules.items():
        module = getattr(module, "module", module)  # unwrap DDP
        for k, v in module.state_dict().items():
            tensors[f"{name}::{k}"] = v.detach().cpu().contiguous().clone()
    for name, opt in optimizers.items():
        opt_tensors: dict = {}
        _flatten_optimizer(name, opt, opt_tensors, meta["optimizers"])
        tensors.update({f"opt::{k}": v for k, v in opt_tensors.items()})
    tmp_t, tmp_m = folder / "state.safetensors.tmp", folder / "state.json.tmp"
    save_file(tensors, str(tmp_t))
    tmp_m.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    os.replace(tmp_t, folder / "state.safetensors")
    os.replace(tmp_m, folder / "state.json")


def exists(folder: str | Path) -> bool:
    folder = Path(folder)
    return (folder / "state.safetensors").is_file() and (folder / "state.json").is_file()


def load(folder: str | Path, modules: dict, optimizers: dict) -> dict:
    """Restore in place; returns the saved ``info``. Optimizers missing in the file are skipped."""
    folder = Path(folder)
    tensors = load_file(str(folder / "state.safetensors"))
    meta = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    for name, module in modules.items():
        module = getattr(module, "module", module)
        sd = {k.split("::", 1)[1]: v for k, v in tensors.items() if k.startswith(name + "::")}
        if sd:
            module.load_state_dict(sd, strict=True)
    opt_tensors = {k[len("opt::"):]: v for k, v in tensors.items() if k.startswith("opt::")}
    for name, opt in optimizers.items():
        if name in meta["optimizers"]:
            _restore_optimizer(name, opt, opt_tensors, meta["optimizers"])
    return meta["info"]


def has_module(folder: str | Path, name: str) -> bool:
    """True when the checkpoint in ``folder`` holds tensors of module ``name``."""
    from safetensors import safe_open

    with safe_open(str(Path(folder) / "state.safetensors"), framework="pt") as f:
        return any(k.startswith(name + "::") for k in f.keys())


def load_module(folder: str | Path, name: str, module: torch.nn.Module) -> None:
    """Restore one module of a checkpoint (strictly)."""
    tensors = load_file(str(Path(folder) / "state.safetensors"))
    sd = {k.split("::", 1)[1]: v for k, v in tensors.items() if k.startswith(name + "::")}
    module.load_state_dict(sd, strict=True)
