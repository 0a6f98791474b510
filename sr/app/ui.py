"""The whole Gradio app: the tabs assembled into one ``gr.Blocks`` and the server launch."""
from __future__ import annotations

import logging
import threading

import gradio as gr
from starlette.middleware import Middleware

from .live_tab import live_tab
from .mos_tab import MOS_CSS, mos_tabs
from ..device import on_zerogpu
from ..settings import settings
from . import config as cfg
from . import models as zoo_ui
from .compare_tab import compare_tab
from .disk_quota import UploadQuota
from .security import NoRemoteFetch
from .zoo_tab import refresh_on_load, zoo_tab

log = logging.getLogger("sr.app")

INTRO = """# 4x super-resolution for fluorescence microscopy
Upload a microscopy image (or click an example) and see how a bicubic baseline, SRGAN and an
improved SRGAN (no batch norm, nearest+conv upsampling; arXiv 2010.04634) enlarge it 4x, side by
side, scored with PSNR/SSIM against your original. The models were trained on Human Protein Atlas
confocal images; the other examples show how far they generalise."""
CSS = """
#preview img, #roi-gallery img, #slider img, .pixelated img { image-rendering: pixelated; }
#status { min-height: 2em; }
#results .grid-wrap, #roi-gallery .grid-wrap { min-height: 0 !important; height: auto !important; }
"""
THEME = gr.themes.Soft(
    font=["ui-sans-serif", "system-ui", "sans-serif"],  # no web fonts: works offline
    font_mono=["ui-monospace", "SFMono-Regular", "monospace"],
)



def build_demo() -> gr.Blocks:
    with gr.Blocks(title="Microscopy super-resolution (SRGAN family)", analytics_enabled=False,
                   delete_cache=(3600, cfg.STATE_TTL_S)) as demo:
        gr.Markdown(INTRO)
        compare = compare_tab()
        zoo_parts = zoo_tab()
        live_tab()
        mos_tabs()  # last: ?rate=1 hides what was made before it and opens the rating tab
        refresh_on_load(demo, compare, zoo_parts)
    return demo


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # the default models first, then the webcam model, then the rest of the zoo (from the disk cache
    # of converted models, sr/ovcache.py, a restart loads each in well under a second)
    first = tuple(dict.fromkeys(zoo_ui.default_model_ids() + tuple(zoo_ui.zoo.with_role("live"))))
    rest = tuple(e.id for e in zoo_ui.zoo.super_resolvers() if e.learned and e.id not in first)
    warm_ids = tuple(dict.fromkeys(first + rest))
    if settings().app_warmup and on_zerogpu():  # on CUDA in the main process, before any GPU worker forks
        zoo_ui.warm_up(warm_ids)
    elif settings().app_warmup:  # load the default models (on the GPU when there is one), the rest in the background
        defaults_warm = threading.Event()

        def warm():
            try:
                zoo_ui.warm_up(warm_ids[:len(first)])
                zoo_ui.warm_up_comparison()  # the comparison's own code paths
            finally:
                defaults_warm.set()
            zoo_ui.warm_up(warm_ids[len(first):])

        threading.Thread(target=warm, name="sr-warm-up", daemon=True).start()
        # listen once the default models are warm (a restart with the model cache: about a second), so the
        # first comparison is as fast as the next ones; a first start converting them waits at most this long
        if not defaults_warm.wait(settings().app_warmup_wait):
            logging.getLogger(__name__).info("default models still warming up after %.0f s; listening",
                                             settings().app_warmup_wait)
    demo = build_demo()
    demo.queue(default_concurrency_limit=4, max_size=64)
    demo.launch(**cfg.server_settings(), max_file_size=cfg.max_file_size(),
                app_kwargs={"middleware": [Middleware(NoRemoteFetch), Middleware(UploadQuota)]},  # never fetch a client's URL
                allowed_paths=[str(cfg.EXAMPLES_DIR)], show_error=True, ssr_mode=False,
                theme=THEME, css=CSS + MOS_CSS)


