#!/usr/bin/env bash
# CI for the mediapipe extra, in its own virtual environment: mediapipe 0.10.21 (the last
# release whose wheel ships the face detector and face mesh for offline use) needs
# numpy < 2, which the main environment does not have.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv-mediapipe
. .venv-mediapipe/bin/activate

pip install torch==2.13.0 'numpy<2'
pip install -e '.[mediapipe,test]'

pytest -q tests/predict/test_mediapipe.py tests/predict/test_faces.py
