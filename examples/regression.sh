#!/bin/sh
# Regression check of a new checkpoint: run the same claims on the checkpoint you trust and on the
# new one, then let `mechcheck diff` decide (exit 1 when a claim that passed on OLD fails on NEW).
#   examples/regression.sh OLD_CHECKPOINT NEW_CHECKPOINT [REPORTS_DIR]
set -eu
OLD=$1 NEW=$2 REPORTS=${3:-reports}
CLAIMS=$(dirname "$0")/test_induction_head.py
# --mc-claims-nonfatal: a claim that does not hold is a finding in the report, not a failed run
pytest "$CLAIMS" -q -p no:cacheprovider --mc-claims-nonfatal --mc-model my-model="$OLD" --mc-report "$REPORTS/base"
pytest "$CLAIMS" -q -p no:cacheprovider --mc-claims-nonfatal --mc-model my-model="$NEW" --mc-report "$REPORTS/new"
mechcheck diff "$REPORTS/base" "$REPORTS/new"
