"""Model cards carry the metadata the Hugging Face Hub shows and filters on: library,
pipeline tag, tags, datasets, metrics, and the card's test numbers as model-index results."""
from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from sr import publish, zoo


@pytest.mark.parametrize("entry", [e for e in zoo.entries() if e.learned], ids=lambda e: e.id)
def test_card_metadata_parses_as_hub_metadata(entry):
    card = ModelCard(publish.render_card(entry))
    data = card.data
    assert data.license == "cc-by-nc-4.0" and data.library_name == "sr-microscopy"
    assert data.datasets == [publish.HUB_DATASET]
    gen = entry.kind == "generator"
    assert data.pipeline_tag == ("image-to-image" if gen else "image-classification")
    assert "microscopy" in data.tags and ("super-resolution" in data.tags) == gen
    numbers = entry.card or {}
    results = {r.metric_type: r for r in (data.eval_results or [])}
    expected = {"psnr": "test_psnr", "ssim": "test_ssim"} if gen else {"accuracy": "test_stain_accuracy"}
    assert set(data.metrics) == set(expected)
    for metric, key in expected.items():
        if key in numbers:
            r = results[metric]
            assert r.metric_value == numbers[key]
            assert r.task_type == data.pipeline_tag and r.dataset_split == "test"
            assert r.dataset_type == publish.HUB_DATASET
        else:
            assert metric not in results
    if results:
        assert data.model_name == entry.id
    assert card.text.lstrip().startswith(f"# {entry.title}")


def test_shipped_generators_all_have_model_index():
    for e in zoo.entries("generator"):
        if e.available:
            data = ModelCard(publish.render_card(e)).data
            assert {r.metric_type for r in data.eval_results} == {"psnr", "ssim"}, e.id
