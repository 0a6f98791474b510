"""The "Compare models" tab: upload, run several models, metrics, slider, ROI zoom, downloads.

Per-user data lives in ``gr.State`` (one temporary folder per run, deleted with the session).
Every action is a named API endpoint (see the README).
"""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from .. import imio
from . import batch, comparison, single, workspace
from . import config as cfg
from . import examples as examples_
from . import models as zoo_ui
from . import roi as roi_ui
from .disk_quota import make_room_for_app_run
from .errors import click_xy, user_errors
from .gpu import compare_seconds, on_gpu, upscale_seconds


def _session(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None


def compare_tab() -> SimpleNamespace:
    """Build the tab inside the current Blocks; returns the components other parts update."""
    run_state = gr.State(None, time_to_live=cfg.STATE_TTL_S, delete_callback=workspace.cleanup_state)
    preview_state = gr.State(None, time_to_live=cfg.STATE_TTL_S, delete_callback=workspace.cleanup_state)
    single_state = gr.State(None, time_to_live=cfg.STATE_TTL_S, delete_callback=workspace.cleanup_state)
    with gr.Tab("Compare models", id="compare"):
        with gr.Row():
            with gr.Column(scale=1):
                image_file = gr.File(
                    label="Image: PNG, JPEG or TIFF; 8/16-bit; grey, RGB or a channel stack",
                    file_types=list(imio.SUFFIXES), type="filepath")
                image_info = gr.Markdown()
                mode = gr.Radio(cfg.MODE_CHOICES, value=cfg.MODE_HR, label="Mode")
                models = gr.CheckboxGroup(zoo_ui.model_choices(), value=zoo_ui.default_models(),
                                          label="Models (others from the zoo; see the Model zoo tab)")
                with gr.Accordion("Options", open=False):
                    tile = gr.Slider(64, 512, value=cfg.DEFAULT_TILE, step=32,
                                     label="Tile size (low-resolution pixels) for tiled inference")
                with gr.Row():
                    blend_default = gr.Checkbox(True, label="GANs at their validated default blend",
                                                elem_id="blend-default")
                    blend = gr.Slider(0, 1, value=1.0, step=0.05, elem_id="blend",
                                      label="GAN detail: blend with the pixel-loss parent (0 = parent, 1 = GAN)",
                                      info="Used when the box is unticked. Exact weight interpolation (ESRGAN).")
                consistency = gr.Checkbox(True, elem_id="consistency",
                                          label="GANs: keep the result consistent with the input (back-projection)",
                                          info="Corrects what contradicts the measured pixels (a GAN's contrast drift); "
                                               "the detail above the input's resolution stays.")
                run_btn = gr.Button("Compare", variant="primary", elem_id="compare-btn")
                ex = examples_.examples()
                gr.Examples([[str(cfg.EXAMPLES_DIR / e.file), e.mode] for e in ex], [image_file, mode],
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
        table = gr.Dataframe(headers=cfg.TABLE_HEADERS, datatype=["str", "str", "number", "number", "number",
                                                                "str", "number", "number", "number", "number"],
                             label="Metrics (PSNR/SSIM against your original; inference time)",
                             column_widths=["19%", "13%", "8%", "8%", "7%", "6%", "10%", "9%", "10%", "10%"],
                             wrap=True, interactive=False, elem_id="metrics")
        gr.Markdown(cfg.METRICS_NOTE, elem_id="metrics-note")
        gr.Markdown("### Compare two images with the slider")
        with gr.Row():
            slider_a = gr.Dropdown(comparison.image_keys(), value=None, label="Left", interactive=True)
            slider_b = gr.Dropdown(comparison.image_keys(), value=None, label="Right", interactive=True)
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
                single_model = gr.Dropdown(zoo_ui.model_choices(), value="bicubic", label="Model")
                single_btn = gr.Button("Upscale")
            single_msg = gr.Markdown()
            with gr.Row():
                single_view = gr.Image(label="Result", format="png", interactive=False)
                single_file = gr.File(label="Result (lossless)")
        with gr.Accordion("Several images: a zip of high-resolution images, scored with paired statistics",
                          open=False):
            gr.Markdown("Each image is downscaled 4x and upscaled back by the models chosen above; you get per "
                        "model the mean PSNR/SSIM (also on the cells) and the paired difference to bicubic on the "
                        f"same images with its 95% interval and wins/ties/losses (at most {batch.MAX_IMAGES} images).")
            with gr.Row():
                batch_file = gr.File(label="Zip of HR images", file_types=[".zip"], type="filepath")
                batch_btn = gr.Button("Score all")
            batch_msg = gr.Markdown()
            batch_table = gr.Dataframe(headers=batch.BATCH_HEADERS, interactive=False, elem_id="batch-table")
            batch_csv = gr.File(label="Per-image metrics (CSV)")


    # ------------------------------------------------------------------ events
    result_outputs = [status, results, table, slider, slider_a, slider_b, preview, roi_x, roi_y,
                      roi_size, roi_gallery, figure, figure_file, downloads, run_state]

    @user_errors
    def load_image(file, old_preview, old_run, request: gr.Request):
        """Read an uploaded image: preview PNG and a description. Clears previous results."""
        workspace.cleanup_state(old_preview)
        workspace.cleanup_state(old_run)
        cleared = [None] * 6
        if not file:
            return [None, "", None, None, None, *cleared, None]
        make_room_for_app_run(_session(request))  # disk caps: evict old runs or refuse
        p = single.preview_input(file, _session(request))
        return [p["view"], p["text"], {"run_dir": p["run_dir"], "factor": p["factor"]}, None, None,
                *cleared, None]

    image_file.change(load_image, [image_file, preview_state, run_state],
                      [preview, image_info, preview_state, roi_x, roi_y, status, results, table,
                       roi_gallery, figure, downloads, run_state],
                      api_name="load_image", concurrency_limit=4)

    @on_gpu(compare_seconds)  # ZeroGPU only: a GPU lent for a duration sized to the request
    @user_errors
    def compare(file, mode, models, roi_size, tile, blend_default, blend, consistency, pending, old_state,
                request: gr.Request, progress=gr.Progress()):
        """Run the chosen models on the image and compare them (metrics in mode 'hr')."""
        workspace.sweep_old(cfg.STATE_TTL_S)
        make_room_for_app_run(_session(request))  # disk caps: evict old runs or refuse
        roi_xy = (pending or {}).get("roi")
        with imio.decode_limits(output_scale=cfg.SCALE if mode == cfg.MODE_LR else 1):  # refuse before decoding
            state = comparison.run_comparison(file, mode, models, roi=roi_xy, roi_size=roi_size,
                                              tile=tile, session=_session(request),
                                              progress=lambda f, d: progress(f, desc=d),
                                              blend=None if blend_default in (True, None) else blend,
                                              consistency=consistency in (True, None))
        workspace.cleanup_state(old_state)
        r = roi_ui.roi_views(state, *state["roi"])
        a, b = comparison.default_slider_keys(state)
        choices = comparison.slider_choices(state)
        x, y, s = r["roi"]
        return (state["message"], comparison.gallery(state), comparison.table_rows(state), comparison.slider_pair(state, a, b),
                gr.Dropdown(choices=choices, value=a), gr.Dropdown(choices=choices, value=b),
                r["preview"], x, y, s, r["gallery"], r["figure"], r["figure"], state["downloads"], state)

    run_btn.click(compare, [image_file, mode, models, roi_size, tile, blend_default, blend, consistency, preview_state,
                            run_state],
                  result_outputs, api_name="compare", concurrency_limit=cfg.concurrency_limit(),
                  concurrency_id="inference")

    roi_outputs = [preview, roi_gallery, figure, figure_file, roi_x, roi_y, roi_size, preview_state]

    def _roi(x, y, size, state, pending):
        if not (state and state.get("items")):  # no run yet: keep the region for the run
            if x is None or y is None:  # e.g. the size slider moved before a run: nothing to do
                return (gr.skip(),) * 8
            pending = dict(pending or {}, roi=[x, y])
            gr.Info("Region kept: it will be zoomed when you run Compare.")
            return (gr.skip(), gr.skip(), gr.skip(), gr.skip(), x, y, size, pending)
        r = roi_ui.roi_views(state, x, y, size)
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
        x, y, s = roi_ui.roi_from_click(state, px, py, size, mode,
                                   (pending or {}).get("factor", 1.0))
        return _roi(x, y, s, state, pending)

    preview.select(roi_click, [run_state, preview_state, roi_size, mode], roi_outputs,
                   api_name="roi_click", api_visibility="undocumented", concurrency_limit=4)

    @user_errors
    def compare_pair(a, b, state):
        """Show two images of the last run (keys: input, reference, or a model id) in the slider."""
        return comparison.slider_pair(state, a, b)

    gr.on([slider_a.input, slider_b.input], compare_pair, [slider_a, slider_b, run_state], slider,
          api_name="slider", concurrency_limit=4)

    @on_gpu(upscale_seconds)
    @user_errors
    def upscale(file, model, tile, old, request: gr.Request, progress=gr.Progress()):
        """Upscale the image 4x with one model; returns a PNG view and the lossless file."""
        make_room_for_app_run(_session(request))  # disk caps: evict old runs or refuse
        with imio.decode_limits(output_scale=cfg.SCALE):  # 4x result: refused before decoding
            r = single.upscale_file(file, model, tile=tile, session=_session(request),
                                    progress=lambda f, d: progress(f, desc=d))
        workspace.cleanup_state(old)
        return r["view"], r["file"], r["message"], {"run_dir": r["run_dir"]}

    single_btn.click(upscale, [image_file, single_model, tile, single_state],
                     [single_view, single_file, single_msg, single_state], api_name="upscale",
                     concurrency_limit=cfg.concurrency_limit(), concurrency_id="inference")
    @user_errors
    def score_batch(file, models, old, request: gr.Request, progress=gr.Progress()):
        """Score the chosen models on every image of a zip (paired statistics against bicubic)."""
        make_room_for_app_run(_session(request))
        r = batch.run_batch(file, models, session=_session(request), progress=lambda f, d: progress(f, desc=d))
        workspace.cleanup_state(old)
        return r["message"], r["rows"], r["csv"], {"run_dir": r["run_dir"]}

    batch_state = gr.State(None, time_to_live=cfg.STATE_TTL_S, delete_callback=workspace.cleanup_state)
    batch_btn.click(score_batch, [batch_file, models, batch_state], [batch_msg, batch_table, batch_csv, batch_state],
                    api_name="compare_batch", concurrency_limit=cfg.concurrency_limit(), concurrency_id="inference")
    return SimpleNamespace(models=models, single_model=single_model)
