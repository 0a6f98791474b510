"""The "Model zoo" tab: the zoo table and each model's card."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from . import config as cfg
from . import models as zoo_ui
from .errors import user_errors


def zoo_tab() -> SimpleNamespace:
    """Build the tab inside the current Blocks; returns the components other parts update."""
    with gr.Tab("Model zoo", id="zoo"):
        gr.Markdown("Every model of the zoo (`sr/zoo.json`). Learned models need pinned weights; "
                    "those not trained yet are listed but cannot run.")
        zoo_table = gr.Dataframe(zoo_ui.zoo_rows(), headers=cfg.ZOO_HEADERS, interactive=False,
                                 label="Models", wrap=True, elem_id="zoo-table",
                                 column_widths=["9%", "13%", "8%", "8%", "19%", "23%", "8%", "12%"],
                                 max_height=900)
        first = zoo_ui.featured_model()
        card_model = gr.Dropdown(zoo_ui.model_choices(), value=first, label="Model card")
        card = gr.Markdown(zoo_ui.model_card_markdown(first))


    @user_errors
    def model_card(model_id):
        """The model card of one zoo model (Markdown)."""
        return zoo_ui.model_card_markdown(model_id)

    card_model.change(model_card, card_model, card, api_name="model_card", concurrency_limit=4)
    return SimpleNamespace(zoo_table=zoo_table, card_model=card_model)


def refresh_on_load(demo: gr.Blocks, compare: SimpleNamespace, zoo_parts: SimpleNamespace) -> None:
    """On page load, the model lists as the registry is now (training pins weights as it goes)."""
    models, single_model = compare.models, compare.single_model
    card_model, zoo_table = zoo_parts.card_model, zoo_parts.zoo_table
    @user_errors
    def refresh_models():
        """The zoo as it is now (models become available as training pins their weights)."""
        choices = zoo_ui.model_choices()
        return (gr.CheckboxGroup(choices=choices), gr.Dropdown(choices=choices),
                gr.Dropdown(choices=choices), zoo_ui.zoo_rows())

    demo.load(refresh_models, None, [models, single_model, card_model, zoo_table], api_name="models",
              concurrency_limit=4)
