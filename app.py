"""Gradio demo: ``python app.py`` (http://127.0.0.1:7860; on a Hugging Face Space 0.0.0.0).

This file only starts the app; the app is the ``sr.app`` package (one module per tab, the
comparison, ROI, inputs, workspace and URL guard each in its own module).
"""
import os

# torch's OpenMP threads must not spin-wait on a shared 2-core Space (set before torch loads)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if os.environ.get("SPACES_ZERO_GPU"):  # ZeroGPU: spaces must be imported before torch touches CUDA
    import spaces  # noqa: F401

from sr.app.ui import build_demo, main  # noqa: E402

__all__ = ["build_demo", "main"]

if __name__ == "__main__":
    main()
