"""Gradio demo: ``python app.py`` (http://127.0.0.1:7860; on a Hugging Face Space 0.0.0.0).

This file only wires Gradio to ``sr``; what the app does is in ``sr/app_logic.py``.
Per-user data lives in ``gr.State`` (one temporary folder per run, deleted with the session);
models are loaded once per process and shared read-only (``sr.api.fast_model``).
Every user action is a named API endpoint (see the README, "Use the demo from Python").
"""
import logging
import os
import threading

# torch's OpenMP threads must not spin-wait on a shared 2-core Space (set before torch loads)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import gradio as gr  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from sr import app_logic as L  # noqa: E402
from sr import imio  # noqa: E402
from sr.disk_quota import UploadQuota, make_room_for_app_run  # noqa: E402
from sr.ui_errors import click_xy, user_errors  # noqa: E402

from sr.live_ui import live_tab  # noqa: E402
from sr.mos_ui import mos_tabs  # noqa: E402

log = logging.getLogger("sr.app")

STATE_TTL_S = 6 * 3600  # per-session results live this long after their last update
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


def _session(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="Microscopy super-resolution (SRGAN family)", analytics_enabled=False,
                   delete_cache=(3600, STATE_TTL_S)) as demo:
        gr.Markdown(INTRO)
        run_state = gr.State(None, time_to_live=STATE_TTL_S, delete_callback=L.cleanup_state)
        preview_state = gr.State(None, time_to_live=STATE_TTL_S, delete_callback=L.cleanup_state)
        single_state = gr.State(None, time_to_live=STATE_TTL_S, delete_callback=L.cleanup_state)

        with gr.Tab("Compare models"):
            with gr.Row():
                with gr.Column(scale=1):
                    image_file = gr.File(
                        label="Image: PNG, JPEG or TIFF; 8/16-bit; grey, RGB or a channel stack",
                        file_types=list(imio.SUFFIXES), type="filepath")
                    image_info = gr.Markdown()
                    mode = gr.Radio(L.MODE_CHOICES, value=L.MODE_HR, label="Mode")
                    models = gr.CheckboxGroup(L.model_choices(), value=L.default_models(),
                                              label="Models (others from the zoo; see the Model zoo tab)")
                    with gr.Accordion("Options", open=False):
                        tile = gr.Slider(64, 512, value=L.DEFAULT_TILE, step=32,
                                         label="Tile size (low-resolution pixels) for tiled inference")
                    run_btn = gr.Button("Compare", variant="primary", elem_id="compare-btn")
                    ex = L.examples()
                    gr.Examples([[str(L.EXAMPLES_DIR / e.file), e.mode] for e in ex], [image_file, mode],
                                example_labels=[e.label for e in ex], examples_per_page=len(ex) or 1,
                                label="Examples (click one; sources in examples/ATTRIBUTION.md)")
                with gr.Column(scale=1):
                    preview = gr.Image(label="Your image: click it to pick the region to zoom",
                                       interactive=False, format="png", elem_id="preview",
                                       buttons=["fullscreen"])
            status = gr.Markdown(elem_id="status")
            results = gr.Gallery(label="Results, side by side (lossless PNG views)", format="png",
                                 columns=5, object_fit="contain", rows=1, elem_id="results",
                                 buttons=["download", "fullscreen"])
            table = gr.Dataframe(headers=L.TABLE_HEADERS, datatype=["str", "str", "number", "number",
                                                                    "number", "str"],
                                 label="Metrics (PSNR/SSIM against your original; inference time)",
                                 interactive=False, elem_id="metrics")
            gr.Markdown("### Compare two images with the slider")
            with gr.Row():
                slider_a = gr.Dropdown(L.image_keys(), value=None, label="Left", interactive=True)
                slider_b = gr.Dropdown(L.image_keys(), value=None, label="Right", interactive=True)
            slider = gr.ImageSlider(label="Slider", format="png", elem_id="slider", max_height=700)
            gr.Markdown("### Region of interest, zoomed for every method (nearest neighbour)\n"
                        "Click your image (top right), or type the region in result pixels and "
                        "press Zoom. Before a run, the region is kept for the run.")
            with gr.Row():
                roi_x = gr.Number(None, label="x (left)", precision=0, minimum=0, elem_id="roi-x")
                roi_y = gr.Number(None, label="y (top)", precision=0, minimum=0, elem_id="roi-y")
                roi_size = gr.Slider(8, 512, value=64, step=4, label="size (px)")
                roi_btn = gr.Button("Zoom")
            roi_gallery = gr.Gallery(label="Zoomed region", format="png", columns=5, object_fit="contain",
                                     rows=1, elem_id="roi-gallery")
            gr.Markdown("### Downloads")
            with gr.Row():
                figure = gr.Image(label="Comparison figure", format="png", interactive=False,
                                  elem_id="figure")
                with gr.Column():
                    figure_file = gr.File(label="Comparison figure (PNG)")
                    downloads = gr.File(label="Results, lossless (zip of all; TIFF for 16-bit or TIFF "
                                        "input, else PNG) and metrics.csv", file_count="multiple")
            with gr.Accordion("Single model: upscale only, full-resolution download", open=False):
                with gr.Row():
                    single_model = gr.Dropdown(L.model_choices(), value="bicubic", label="Model")
                    single_btn = gr.Button("Upscale")
                single_msg = gr.Markdown()
                with gr.Row():
                    single_view = gr.Image(label="Result", format="png", interactive=False)
                    single_file = gr.File(label="Result (lossless)")

        with gr.Tab("Model zoo"):
            gr.Markdown("Every model of the zoo (`sr/zoo.json`). Learned models need pinned weights; "
                        "those not trained yet are listed but cannot run.")
            zoo_table = gr.Dataframe(L.zoo_rows(), headers=L.ZOO_HEADERS, interactive=False,
                                     label="Models", wrap=True, elem_id="zoo-table",
                                     column_widths=["9%", "13%", "8%", "8%", "19%", "23%", "8%", "12%"],
                                     max_height=900)
            first = "srgan-improved" if "srgan-improved" in [v for _, v in L.model_choices()] else None
            card_model = gr.Dropdown(L.model_choices(), value=first, label="Model card")
            card = gr.Markdown(L.model_card_markdown(first))

        live_tab()
        mos_tabs()

        # ------------------------------------------------------------------ events
        result_outputs = [status, results, table, slider, slider_a, slider_b, preview, roi_x, roi_y,
                          roi_size, roi_gallery, figure, figure_file, downloads, run_state]

        @user_errors
        def load_image(file, old_preview, old_run, request: gr.Request):
            """Read an uploaded image: preview PNG and a description. Clears previous results."""
            L.cleanup_state(old_preview)
            L.cleanup_state(old_run)
            cleared = [None] * 6
            if not file:
                return [None, "", None, None, None, *cleared, None]
            make_room_for_app_run(_session(request))  # disk caps: evict old runs or refuse
            p = L.preview_input(file, _session(request))
            return [p["view"], p["text"], {"run_dir": p["run_dir"], "factor": p["factor"]}, None, None,
                    *cleared, None]

        image_file.change(load_image, [image_file, preview_state, run_state],
                          [preview, image_info, preview_state, roi_x, roi_y, status, results, table,
                           roi_gallery, figure, downloads, run_state],
                          api_name="load_image", concurrency_limit=4)

        @user_errors
        def compare(file, mode, models, roi_size, tile, pending, old_state,
                    request: gr.Request, progress=gr.Progress()):
            """Run the chosen models on the image and compare them (metrics in mode 'hr')."""
            L.sweep_old(STATE_TTL_S)
            make_room_for_app_run(_session(request))  # disk caps: evict old runs or refuse
            roi_xy = (pending or {}).get("roi")
            with imio.decode_limits(output_scale=L.SCALE if mode == L.MODE_LR else 1):  # refuse before decoding
                state = L.run_comparison(file, mode, models, roi=roi_xy, roi_size=roi_size,
                                         tile=tile, session=_session(request),
                                         progress=lambda f, d: progress(f, desc=d))
            L.cleanup_state(old_state)
            r = L.roi_views(state, *state["roi"])
            a, b = L.default_slider_keys(state)
            choices = L.slider_choices(state)
            x, y, s = r["roi"]
            return (state["message"], L.gallery(state), L.table_rows(state), L.slider_pair(state, a, b),
                    gr.Dropdown(choices=choices, value=a), gr.Dropdown(choices=choices, value=b),
                    r["preview"], x, y, s, r["gallery"], r["figure"], r["figure"], state["downloads"], state)

        run_btn.click(compare, [image_file, mode, models, roi_size, tile, preview_state, run_state],
                      result_outputs, api_name="compare", concurrency_limit=L.concurrency_limit(),
                      concurrency_id="inference")

        roi_outputs = [preview, roi_gallery, figure, figure_file, roi_x, roi_y, roi_size, preview_state]

        def _roi(x, y, size, state, pending):
            if not (state and state.get("items")):  # no run yet: keep the region for the run
                if x is None or y is None:  # e.g. the size slider moved before a run: nothing to do
                    return (gr.skip(),) * 8
                pending = dict(pending or {}, roi=[x, y])
                gr.Info("Region kept: it will be zoomed when you run Compare.")
                return (gr.skip(), gr.skip(), gr.skip(), gr.skip(), x, y, size, pending)
            r = L.roi_views(state, x, y, size)
            pending = dict(pending or {}, roi=list(r["roi"][:2]))  # a re-run keeps this region
            return (r["preview"], r["gallery"], r["figure"], r["figure"], *r["roi"], pending)

        @user_errors
        def roi(x, y, size, state, pending):
            """Zoom the region (top-left x, y and size, in result pixels) in every image of the last run."""
            return _roi(x, y, size, state, pending)

        gr.on([roi_btn.click, roi_size.release], roi, [roi_x, roi_y, roi_size, run_state, preview_state],
              roi_outputs, api_name="roi", concurrency_limit=4)

        @user_errors
        def roi_click(state, pending, size, mode, evt: gr.SelectData):
            """Click on the image: centre the region there."""
            px, py = click_xy(evt)  # validated: two finite numbers, else a one-line refusal
            x, y, s = L.roi_from_click(state, px, py, size, mode, (pending or {}).get("factor", 1.0))
            return _roi(x, y, s, state, pending)

        preview.select(roi_click, [run_state, preview_state, roi_size, mode], roi_outputs,
                       api_name="roi_click", api_visibility="undocumented", concurrency_limit=4)

        @user_errors
        def compare_pair(a, b, state):
            """Show two images of the last run (keys: input, reference, or a model id) in the slider."""
            return L.slider_pair(state, a, b)

        gr.on([slider_a.input, slider_b.input], compare_pair, [slider_a, slider_b, run_state], slider,
              api_name="slider", concurrency_limit=4)

        @user_errors
        def upscale(file, model, tile, old, request: gr.Request, progress=gr.Progress()):
            """Upscale the image 4x with one model; returns a PNG view and the lossless file."""
            make_room_for_app_run(_session(request))  # disk caps: evict old runs or refuse
            with imio.decode_limits(output_scale=L.SCALE):  # 4x result: refused before decoding
                r = L.upscale_file(file, model, tile=tile, session=_session(request),
                                   progress=lambda f, d: progress(f, desc=d))
            L.cleanup_state(old)
            return r["view"], r["file"], r["message"], {"run_dir": r["run_dir"]}

        single_btn.click(upscale, [image_file, single_model, tile, single_state],
                         [single_view, single_file, single_msg, single_state], api_name="upscale",
                         concurrency_limit=L.concurrency_limit(), concurrency_id="inference")

        @user_errors
        def model_card(model_id):
            """The model card of one zoo model (Markdown)."""
            return L.model_card_markdown(model_id)

        card_model.change(model_card, card_model, card, api_name="model_card", concurrency_limit=4)

        @user_errors
        def refresh_models():
            """The zoo as it is now (models become available as training pins their weights)."""
            choices = L.model_choices()
            return (gr.CheckboxGroup(choices=choices), gr.Dropdown(choices=choices),
                    gr.Dropdown(choices=choices), L.zoo_rows())

        demo.load(refresh_models, None, [models, single_model, card_model, zoo_table], api_name="models",
                  concurrency_limit=4)
    return demo


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if os.environ.get("SR_APP_WARMUP", "1") != "0":  # load the default models while the page opens
        threading.Thread(target=L.warm_up, args=(L.DEFAULT_MODELS + ("srgan-lite",),),
                         name="sr-warm-up", daemon=True).start()
    demo = build_demo()
    demo.queue(default_concurrency_limit=4, max_size=64)
    demo.launch(**L.server_settings(), max_file_size=L.max_file_size(),
                # never fetch a client's URL; caps on uploads per client and on the upload cache
                app_kwargs={"middleware": [Middleware(L.NoRemoteFetch), Middleware(UploadQuota)]},
                allowed_paths=[str(L.EXAMPLES_DIR)], show_error=True, ssr_mode=False,
                theme=THEME, css=CSS)


if __name__ == "__main__":
    main()
