"""Rebuild examples/mos_hr: 256x256 crops of 12 Kaggle HPA 2018 *test*-split images (see ATTRIBUTION.md).

    python examples/mos_hr/make_mos_hr.py [SRC]   # SRC: .../sanch7_kaggle2018_singlechannel/test_sample

Files in examples/ itself are avoided, so the study does not rate the demo's own examples.
The crop is the 256x256 window (128-pixel grid) with the largest intensity std (sr.mos.pool.best_crop).
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
from sr.mos.pool import best_crop  # noqa: E402

FILES = [  # Kaggle HPA 2018 test ids, mixed channels
    "019ba74e-bad2-11e8-b2b8-ac1f6b6435d0_yellow.png",
    "08cd3138-bad0-11e8-b2b8-ac1f6b6435d0_green.png",
    "0df971b0-bad7-11e8-b2b9-ac1f6b6435d0_blue.png",
    "0ea5fad2-bacf-11e8-b2b8-ac1f6b6435d0_red.png",
    "13689636-bad1-11e8-b2b8-ac1f6b6435d0_green.png",
    "13b70c14-bad9-11e8-b2b9-ac1f6b6435d0_red.png",
    "16d033a8-bacf-11e8-b2b8-ac1f6b6435d0_yellow.png",
]


def main(src: Path) -> None:
    names = sorted(p.name for p in src.glob("*_green.png"))
    files = FILES + [n for n in names if n not in FILES and not n.startswith(("02ad0dd2", "79c54a6e", "3d5e183c"))][:5]
    for old in HERE.glob("*.png"):
        old.unlink()
    for n in files:
        a = np.asarray(Image.open(src / n))
        y, x = best_crop(a, 256)
        out = HERE / f"hpa_test_{n.split('-')[0]}_{n.rsplit('_', 1)[1][:-4]}.png"
        Image.fromarray(np.ascontiguousarray(a[y:y + 256, x:x + 256])).save(out, optimize=True)
        print(f"{out.name}\t{n}\ty={y} x={x}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/hpa/sanch7_kaggle2018_singlechannel/test_sample"))
