"""The example images offered in the app (``examples/``)."""
from __future__ import annotations

from dataclasses import dataclass

from .config import EXAMPLES_DIR, MODE_HR, MODE_LR


@dataclass(frozen=True)
class Example:
    file: str
    mode: str
    label: str

EXAMPLES = (
    Example("hpa_test_02ad0dd2_green.png", MODE_HR, "HPA test image: protein stain (green)"),
    Example("hpa_test_79c54a6e_blue.png", MODE_HR, "HPA test image: nuclei (blue)"),
    Example("hpa_test_3d5e183c_red.png", MODE_HR, "HPA test image: microtubules (red)"),
    Example("hpa_composite_00008af0.png", MODE_HR, "HPA RGB composite (seed project)"),
    Example("seed_lr128_0349cea2_3.png", MODE_LR, "Seed project 128x128 low-res composite A"),
    Example("seed_lr128_05caacd4_2.png", MODE_LR, "Seed project 128x128 low-res composite B"),
    Example("zebrafish_16bit_crop.tif", MODE_HR, "16-bit TIFF: zebrafish spinal cord"),
    Example("ht29_3channel_stack.tif", MODE_HR, "3-channel TIFF stack: HT29 cells"),
    Example("mouse_brain_section.png", MODE_HR, "Cross-domain: mouse brain section"),
    Example("usaf_target.png", MODE_HR, "Cross-domain: USAF resolution target"),
    Example("histology_he.jpg", MODE_HR, "Cross-domain: H&E histology"),
    Example("em_isbi2012_test_0.png", MODE_HR, "Cross-domain: electron microscopy"),
    Example("photo_chelsea.png", MODE_HR, "Cross-domain: natural photo"),
)

def examples() -> list[Example]:
    """The examples whose files exist (``examples/``)."""
    return [e for e in EXAMPLES if (EXAMPLES_DIR / e.file).is_file()]
