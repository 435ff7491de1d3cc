#!/usr/bin/env bash
# The image's install steps, in one place: deploy/Dockerfile runs this script,
# and deploy/replay_image.sh runs it in a clean directory where no container
# builder is available, so both install exactly the same thing.
#
# usage: [PYTHON=python3.11] deploy/install_image.sh VENV_DIR   (run from the build context: the repository root)
#
# Every dependency comes from deploy/requirements.lock (`uv pip compile
# pyproject.toml --universal --extra speech`, regenerated when pyproject.toml changes) and is
# installed with --no-deps: the lock already holds the whole closure, and
# --no-deps keeps rapidocr's request for the GUI OpenCV build (libGL) out; the
# headless build is in the lock instead.
set -euo pipefail
venv=${1:?usage: install_image.sh VENV_DIR}
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check uv==0.13.8
"$venv/bin/uv" pip install --quiet --python "$venv/bin/python" --no-deps -r deploy/requirements.lock
"$venv/bin/uv" pip install --quiet --python "$venv/bin/python" --no-deps .
# The closure must be consistent, but for rapidocr's declared opencv-python (left out on purpose).
problems=$("$venv/bin/uv" pip check --python "$venv/bin/python" 2>&1 | grep -E "requires|conflict" | grep -v 'requires `opencv-python>=' || true)
[ -z "$problems" ] || { echo "inconsistent install: $problems" >&2; exit 1; }
# cv2 must come from the headless build and link no GUI library.
"$venv/bin/python" - <<'PY'
import importlib.metadata as md, pathlib, cv2
names = {d.metadata["Name"].lower() for d in md.distributions()}
assert "opencv-python" not in names and "opencv-python-headless" in names, names & {"opencv-python", "opencv-python-headless"}
assert (pathlib.Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml").is_file()
print("image install ok: cv2", cv2.__version__, "(headless)")
PY
