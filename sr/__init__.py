"""sr: 4x super-resolution of fluorescence microscopy images with SRGAN-family models.

Light at import: torch and the models load only when a function needs them.

    import sr
    sr.list_models()
    out = sr.upscale(image, "srgan-improved")   # numpy in, numpy out (same dtype/layout)
    net = sr.load("srgan-improved")             # torch.nn.Module, eval mode, .config
"""
__version__ = "0.1.0"

__all__ = ["list_models", "load", "upscale", "__version__"]


def list_models(available_only: bool = False, kind: str | None = None) -> list[dict]:
    from .zoo import list_models as _list

    return _list(available_only=available_only, kind=kind)


def load(model_id: str, blend: float | None = None):
    from .api import load as _load

    return _load(model_id, blend)


load.__doc__ = "A fresh torch module of a zoo model (a GAN at its default blend); see sr.api.load."


def upscale(image, model, **kwargs):
    from .api import upscale as _upscale

    return _upscale(image, model, **kwargs)


upscale.__doc__ = "Super-resolve a numpy image 4x; see sr.api.upscale."
