#!/usr/bin/env bash
# Reproduce the results tables under docs/ (and the test metrics in the model cards).
# Usage: scripts/evaluate_zoo.sh [SHARED_DATA_DIR]   (default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-../shared/data}
MODELS=${MODELS:-$(python -c "import sr.zoo as z; print(','.join(e.id for e in z.super_resolvers()))")}
HPA_TEST=$D/hpa/sanch7_kaggle2018_singlechannel/test_sample
# each GAN whose default blend is below 1 also at blend 1 (the GAN itself), on the HPA test split
AT1=$(python -c "import sr.zoo as z; print(''.join(',' + e.id + '@1' for e in z.super_resolvers() if (e.card or {}).get('default_blend', 1) < 1 and ('@' not in '$MODELS') and e.id in '$MODELS'.split(',')))")
# each GAN with back-projection steps (sr.consistency) also without them (`~0`), to show what they do
NOC=$(python -c "import sr.zoo as z; print(''.join(',' + e.id + '~0' for e in z.super_resolvers() if (e.card or {}).get('lr_consistency') and ('@' not in '$MODELS') and e.id in '$MODELS'.split(',')))")
# 1. the paper's table on the HPA test split (+ nuclei segmentation on the blue images, + figure)
python -m sr evaluate --data "$HPA_TEST" --models "$MODELS$AT1$NOC" --segmentation --update-cards \
  --name hpa_test --out docs --json docs/hpa_test.json \
  --figure "$HPA_TEST/02ad0dd2-bada-11e8-b2b9-ac1f6b6435d0_green.png" --figure-roi 224,272,64 --figure-roi 128,144,64
# 1b. the feature networks' stain accuracy on the same split (msrgan's content network, the evaluation one)
python -m sr evaluate --data "$HPA_TEST" --models msrgan-vgg,eval-vgg --json docs/featurenets_test.json --update-cards
# 2. cross-domain: other fluorescence, electron microscopy
python -m sr evaluate --data "$D/fluo/dsb2018_stage1_test" --limit 20 --models "$MODELS$NOC" --name cross_dsb2018_fluo --out docs
python -m sr evaluate --data "$D/fluo/cellprofiler_examples/ExampleHuman" --models "$MODELS$NOC" --name cross_cellprofiler_human --out docs
python -m sr evaluate --data "$D/cross_domain/isbi2012_em_zhixuhao_unet" --models "$MODELS" --name cross_isbi2012_em --out docs
