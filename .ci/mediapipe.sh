#!/usr/bin/env bash
# CI for the mediapipe extra, in its own virtual environment: mediapipe 0.10.21 (the last
# release whose wheel ships the face detector and face mesh for offline use) needs
# numpy < 2, which the main environment does not have. `.ci/run` calls it in its fresh
# clone; it also runs alone from a checkout (`bash .ci/mediapipe.sh`).
#
# The venv goes to $MGRR_MEDIAPIPE_VENV (default: .venv-mediapipe in the repository, which
# git ignores). MGRR_REQUIRE_MEDIAPIPE=1 makes the mediapipe tests fail instead of skip
# when mediapipe cannot be imported, so this run proves the extra works, or fails.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${MGRR_MEDIAPIPE_VENV:-.venv-mediapipe}"
# Leave any active venv first: the new one must be built from the base interpreter.
if [[ -n "${VIRTUAL_ENV:-}" ]]; then
    PATH="${PATH#"$VIRTUAL_ENV/bin:"}"
    unset VIRTUAL_ENV
fi
python3 -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
export PIP_ROOT_USER_ACTION=ignore

# README: the extra (torch's CPU build and numpy < 2 first, then the package with it)
pip install -q torch==2.13.0 'numpy<2'
pip install -q -e '.[mediapipe,test]'
python -c "import mediapipe, numpy; print(f'ci: mediapipe {mediapipe.__version__}, numpy {numpy.__version__}')"

MGRR_REQUIRE_MEDIAPIPE=1 pytest -q -rs \
    tests/predict/test_mediapipe.py tests/predict/test_faces.py
