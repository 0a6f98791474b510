"""Rebuild examples/ from the project's shared data folder (../shared/data; see ATTRIBUTION.md).

Most files are exact copies; two are derived (a crop and a channel stack), made here.
Usage: python examples/make_examples.py [DATA_DIR]
"""
import shutil
import sys
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

HERE = Path(__file__).resolve().parent
DATA = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent.parent / "shared" / "data"
HPA_TEST = "hpa/sanch7_kaggle2018_singlechannel/test_sample/"
COPIES = {
    "hpa_test_02ad0dd2_green.png": HPA_TEST + "02ad0dd2-bada-11e8-b2b9-ac1f6b6435d0_green.png",
    "hpa_test_79c54a6e_blue.png": HPA_TEST + "79c54a6e-bad1-11e8-b2b8-ac1f6b6435d0_blue.png",
    "hpa_test_3d5e183c_red.png": HPA_TEST + "3d5e183c-bad4-11e8-b2b8-ac1f6b6435d0_red.png",
    "hpa_composite_00008af0.png": "hpa/seed_vibss2397/full_res/00008af0-bad0-11e8-b2b8-ac1f6b6435d0.png",
    "seed_lr128_0349cea2_3.png": "hpa/seed_vibss2397/lr_128_composites/0349cea2-bbba-11e8-b2ba-ac1f6b6435d0_3.png",
    "seed_lr128_05caacd4_2.png": "hpa/seed_vibss2397/lr_128_composites/05caacd4-bbbd-11e8-b2ba-ac1f6b6435d0_2.png",
    "photo_chelsea.png": "cross_domain/skimage_pypi/chelsea.png",
    "mouse_brain_section.png": "cross_domain/seed_vibss2397/mousebrain_brain.png",
    "usaf_target.png": "cross_domain/seed_vibss2397/USAF_USAF-green.png",
    "histology_he.jpg": "cross_domain/stardist_pypi/histo.jpg",
    "em_isbi2012_test_0.png": "cross_domain/isbi2012_em_zhixuhao_unet/test_0.png",
}


def main() -> None:
    for name, src in COPIES.items():
        shutil.copyfile(DATA / src, HERE / name)
    # 16-bit: a 384x384 crop of the zebrafish spinal cord (uint16 PNG -> uint16 TIFF)
    z = np.asarray(Image.open(DATA / "fluo/skimage_tutorials/zebrafish-spinal-cord.png"))
    assert z.dtype == np.uint16, z.dtype
    tifffile.imwrite(HERE / "zebrafish_16bit_crop.tif", z[320:704, 352:736], compression="zlib")
    # multi-channel: the three CellProfiler ExampleHuman channels as one (C,H,W) stack, 384x384 crop
    d = DATA / "fluo/cellprofiler_examples/ExampleHuman"
    chans = [np.asarray(Image.open(d / f"AS_09125_050116030001_D03f00d{i}.tif").convert("L"))
             for i in range(3)]
    stack = np.stack(chans)[:, 64:448, 64:448]
    tifffile.imwrite(HERE / "ht29_3channel_stack.tif", stack, photometric="minisblack",
                     compression="zlib", metadata={"axes": "CYX"})


if __name__ == "__main__":
    main()
