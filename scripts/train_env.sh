# Sourced by the training scripts (train_zoo.sh, gan_ablation.sh) from the repository root, with the
# optional DATA_DIR argument as $1. Runs come from a snapshot of the package, so editing the checkout
# cannot break a long run; weights, registry pins and run folders still go to this checkout.
ROOT=$(pwd)
SNAP=$(mktemp -d /tmp/sr_train_snapshot.XXXX)
cp -r sr "$SNAP/"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}  # no spin-waiting when cores are shared
export SR_WEIGHTS_DIR="$ROOT/weights" SR_REGISTRY="$ROOT/sr/zoo.json" PYTHONPATH="$SNAP"
DATA=${1:-../shared/data/hpa/sanch7_kaggle2018_singlechannel/train_sample}
case "$DATA" in /*) ;; *) DATA="$ROOT/$DATA" ;; esac
