"""The model zoo: ONE registry (``sr/zoo.json``) and the resolution of weights.

Resolution of a learned model's weights, in order:

1. ``weights/<id>/model.safetensors`` (``SR_WEIGHTS_DIR`` overrides the folder) whose sha256
   equals the registry pin: used with no network at all.
2. Otherwise the pinned revision is downloaded from the Hugging Face Hub with
   ``hf_hub_download`` (``HF_ENDPOINT`` is honoured at call time) and its sha256 checked.

A checksum mismatch is always an error. An unreachable Hub costs one short probe per process
(``SR_HUB_PROBE_TIMEOUT`` seconds, default 3) and then fails fast with a message that names
the model and how to get its weights.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .settings import settings

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_REGISTRY = PACKAGE_DIR / "zoo.json"
WEIGHT_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
DEFAULT_ENDPOINT = "https://huggingface.co"


class ZooError(RuntimeError):
    """A model cannot be resolved or loaded; the message says why and what to do."""


@dataclass(frozen=True)
class ModelEntry:
    id: str
    kind: str  # "baseline" | "generator" | "featurenet"
    title: str
    description: str
    method: str | None = None
    arch: dict = field(default_factory=dict)
    recipe: dict = field(default_factory=dict)
    repo: str | None = None
    revision: str | None = None
    sha256: str | None = None
    card: dict = field(default_factory=dict)
    int8: dict = field(default_factory=dict)  # pins of the quantised model (sr/int8.py), when made
    roles: tuple = ()  # "app-default" (compared by default in the app), "live" (webcam), "cli-default"

    def __post_init__(self):
        object.__setattr__(self, "roles", tuple(self.roles or ()))

    @property
    def learned(self) -> bool:
        return self.kind != "baseline"

    @property
    def upscales(self) -> bool:
        """True for models that turn an image into a 4x image (baselines and generators)."""
        return self.kind in ("baseline", "generator")

    @property
    def blend_parent(self) -> str | None:
        """The pixel-loss model a GAN was fine-tuned from (the other end of its blend)."""
        return self.recipe.get("init") if self.recipe.get("stage") == "gan" else None

    @property
    def content_net(self) -> str | None:
        """The zoo feature network of a ``featurenet:<id>`` content loss, if any."""
        spec = self.recipe.get("content", "")
        return spec.split(":", 1)[1] if spec.startswith("featurenet:") else None

    @property
    def repo_id(self) -> str | None:
        """Hub repo: ``SR_HUB_ORG`` (or the registry default) + the model's repo name."""
        if self.repo is None:
            return None
        if "/" in self.repo:
            return self.repo
        return f"{hub_org()}/{self.repo}"

    @property
    def available(self) -> bool:
        """True when weights are pinned (baselines are always available)."""
        return not self.learned or self.sha256 is not None

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["repo_id"] = self.repo_id
        d["available"] = self.available
        return d


def registry_path() -> Path:
    """``sr/zoo.json``, or the file named by ``SR_REGISTRY`` (tests use a tiny zoo)."""
    return Path(settings().registry or DEFAULT_REGISTRY)


def _read_registry() -> dict:
    with open(registry_path(), encoding="utf-8") as f:
        return json.load(f)


@lru_cache(maxsize=4)
def _registry_at(path: str, mtime: float) -> dict:
    return _read_registry()


def _registry() -> dict:
    path = registry_path()
    return _registry_at(str(path), path.stat().st_mtime)


def hub_org() -> str:
    return settings().hub_org or _registry()["hub_org_default"]


def reload_registry() -> None:
    _registry_at.cache_clear()
    _entries_at.cache_clear()


@lru_cache(maxsize=4)
def _entries_at(path: str, mtime: float) -> dict[str, ModelEntry]:
    return {m["id"]: ModelEntry(**m) for m in _registry_at(path, mtime)["models"]}


def _entries() -> dict[str, ModelEntry]:
    path = registry_path()
    return _entries_at(str(path), path.stat().st_mtime)


def entries(kind: str | None = None) -> list[ModelEntry]:
    return [e for e in _entries().values() if kind is None or e.kind == kind]


def get_entry(model_id: str) -> ModelEntry:
    try:
        return _entries()[model_id]
    except (KeyError, TypeError):
        known = ", ".join(_entries())
        raise ZooError(f"unknown model {model_id!r}; known models: {known}") from None


def train_order() -> list[ModelEntry]:
    """Learned models in dependency order: a GAN after the generator it starts from (``init``),
    a model after the feature network of its content loss."""
    learned = [e for e in entries() if e.learned]
    done: list[ModelEntry] = []
    seen: set[str] = set()

    def visit(e: ModelEntry, path: tuple = ()) -> None:
        if e.id in seen:
            return
        if e.id in path:
            raise ZooError(f"registry recipes depend on each other in a cycle: {' -> '.join(path + (e.id,))}")
        for dep in (e.recipe.get("init"), e.content_net):
            if dep:
                visit(get_entry(dep), path + (e.id,))
        seen.add(e.id)
        done.append(e)

    for e in learned:
        visit(e)
    return done


def with_role(role: str) -> list[str]:
    """Ids of the models with ``role`` in the registry (e.g. ``app-default``, ``live``)."""
    return [e.id for e in entries() if role in e.roles]


def list_models(available_only: bool = False, kind: str | None = None) -> list[dict]:
    """The registry as plain dicts (``python -m sr zoo --json`` prints this)."""
    return [e.as_dict() for e in entries(kind) if e.available or not available_only]


def super_resolvers(available_only: bool = True) -> list[ModelEntry]:
    """Models that turn an image into a 4x image: baselines and generators."""
    return [e for e in entries() if e.upscales and (e.available or not available_only)]


def update_entry(model_id: str, replace_card: bool = False, **changes) -> None:
    """Rewrite one registry entry (used by training, evaluation and publishing). ``card``
    changes are merged into the card, or replace it with ``replace_card`` (a new training run).

    Read-modify-write under a file lock: parallel training chains export into one registry.
    """
    from filelock import FileLock

    path = registry_path()
    with FileLock(str(path) + ".lock", timeout=60):
        reload_registry()
        reg = _read_registry()
        for m in reg["models"]:
            if m["id"] == model_id:
                for k, v in changes.items():
                    if k == "card" and not replace_card:
                        m.setdefault("card", {}).update(v)
                    else:
                        m[k] = v
                break
        else:
            raise ZooError(f"unknown model {model_id!r}")
        tmp = path.with_suffix(f".json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(reg, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    reload_registry()


# ---------------------------------------------------------------------------- files

def weights_dir() -> Path:
    return Path(settings().weights_dir or PACKAGE_DIR.parent / "weights")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


_probe_lock = threading.Lock()
_probe_results: dict[str, str | None] = {}


def hub_unreachable_reason(endpoint: str | None = None) -> str | None:
    """Probe the Hub once per process and endpoint: ``None`` if it answers, else why not."""
    endpoint = endpoint or _endpoint()
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return "HF_HUB_OFFLINE is set"
    with _probe_lock:
        if endpoint not in _probe_results:
            import httpx

            timeout = settings().hub_probe_timeout
            try:
                httpx.head(f"{endpoint}/api/models", timeout=timeout, follow_redirects=False)
                _probe_results[endpoint] = None
            except Exception as exc:  # any transport failure means "unreachable"
                _probe_results[endpoint] = f"{type(exc).__name__}: {exc}"
        return _probe_results[endpoint]


def reset_hub_probe() -> None:
    with _probe_lock:
        _probe_results.clear()


def _how_to_get(entry: ModelEntry) -> str:
    return (f"put config.json and {WEIGHT_FILE} of the Hub repo {entry.repo_id} "
            f"(revision {entry.revision or 'main'}) into {weights_dir() / entry.id}/, "
            f"or connect to the Hub (HF_ENDPOINT={_endpoint()})")


def _verify(entry: ModelEntry, path: Path, where: str) -> None:
    got = sha256_file(path)
    if got != entry.sha256:
        raise ZooError(f"checksum mismatch for model {entry.id!r} ({where} {path}): sha256 {got}, "
                       f"registry pin {entry.sha256}; refusing to load it")


_resolve_lock = threading.Lock()


def resolve(model_id: str) -> Path:
    """Folder holding verified ``config.json`` + ``model.safetensors`` for a learned model."""
    entry = get_entry(model_id)
    if not entry.learned:
        raise ZooError(f"model {model_id!r} is a non-learned baseline and has no weights")
    if entry.sha256 is None:
        raise ZooError(f"model {model_id!r} has no published weights yet (not trained); "
                       f"train it with `python -m sr train --model {model_id}`")
    local = weights_dir() / entry.id
    if (local / WEIGHT_FILE).is_file():
        _verify(entry, local / WEIGHT_FILE, "local file")
        if not (local / CONFIG_FILE).is_file():
            raise ZooError(f"model {model_id!r}: {local / CONFIG_FILE} is missing")
        return local
    with _resolve_lock:
        return _download(entry)


def _download(entry: ModelEntry) -> Path:
    endpoint = _endpoint()
    reason = hub_unreachable_reason(endpoint)
    if reason is not None:
        raise ZooError(f"weights of model {entry.id!r} are not in {weights_dir() / entry.id} and the "
                       f"Hugging Face Hub is unreachable ({reason}); {_how_to_get(entry)}")
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    timeout = settings().hub_probe_timeout * 3
    paths = {}
    try:
        for name in (CONFIG_FILE, WEIGHT_FILE):
            if not isinstance(try_to_load_from_cache(entry.repo_id, name, revision=entry.revision), str):
                # One HEAD without retries first: on a 5xx, a timeout or a dropped connection,
                # hf_hub_download retries with backoff (and a 60 s timeout) for up to minutes.
                get_hf_file_metadata(hf_hub_url(entry.repo_id, name, revision=entry.revision, endpoint=endpoint),
                                     timeout=timeout)
            paths[name] = Path(hf_hub_download(
                entry.repo_id, name, revision=entry.revision, endpoint=endpoint, etag_timeout=timeout,
            ))
    except LocalEntryNotFoundError as exc:  # hf_hub_download's "could not reach it", not "not found"
        exc = exc.__cause__ or exc
        raise ZooError(f"model {entry.id!r}: download from {endpoint} failed "
                       f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                       f"{_how_to_get(entry)}") from None
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as exc:
        raise ZooError(f"model {entry.id!r}: {entry.repo_id}@{entry.revision or 'main'} not found on the Hub "
                       f"({type(exc).__name__}); {_how_to_get(entry)}") from None
    except Exception as exc:  # HTTP errors, timeouts, dropped connections, short bodies
        raise ZooError(f"model {entry.id!r}: download from {endpoint} failed "
                       f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                       f"{_how_to_get(entry)}") from None
    try:
        _verify(entry, paths[WEIGHT_FILE], "downloaded file")
    except ZooError:
        # never leave a corrupted blob in the cache for the next try
        for p in paths.values():
            real = p.resolve()
            p.unlink(missing_ok=True)
            real.unlink(missing_ok=True)
        raise
    return paths[WEIGHT_FILE].parent


def _load_class(entry: ModelEntry):
    from . import arch

    return {"generator": arch.Generator, "featurenet": arch.FeatureNet}[entry.kind]


def load(model_id: str):
    """A fresh ``torch.nn.Module`` in eval mode with verified weights, loaded strictly.

    The module carries ``.config`` (its architecture) and ``.zoo_entry`` (the registry entry).
    """
    entry = get_entry(model_id)
    folder = resolve(model_id)
    try:
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ZooError(f"model {model_id!r}: unreadable {CONFIG_FILE}: {exc}") from None
    if config != entry.arch:
        raise ZooError(f"model {model_id!r}: {CONFIG_FILE} {config} does not match the registry "
                       f"architecture {entry.arch}")
    from safetensors.torch import load_file

    cls = _load_class(entry)
    try:
        model = cls(**config)
        state = load_file(str(folder / WEIGHT_FILE))
        # every key must match, buffers included (torch alone forgives a missing
        # BatchNorm num_batches_tracked), then torch checks the shapes
        expected = set(model.state_dict())
        if set(state) != expected:
            missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
            raise KeyError(f"missing keys {missing[:5]}, unexpected keys {extra[:5]}")
        model.load_state_dict(state, strict=True)
    except Exception as exc:  # missing/unexpected keys, shape mismatch, unreadable file
        raise ZooError(f"model {model_id!r}: weights do not match its architecture "
                       f"({type(exc).__name__}: {str(exc).splitlines()[0][:300]})") from None
    model.eval()
    model.requires_grad_(False)
    model.zoo_entry = entry
    return model


_shared_lock = threading.Lock()
_shared: dict[str, object] = {}


def shared(model_id: str):
    """A process-wide, read-only instance (loaded once; used by the app and the CLI)."""
    with _shared_lock:
        if model_id not in _shared:
            _shared[model_id] = load(model_id)
        return _shared[model_id]


def clear_shared() -> None:
    with _shared_lock:
        _shared.clear()
