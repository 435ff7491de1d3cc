"""Why: the GUI build of OpenCV (``opencv-python``) links libGL and X11, so on a
bare server or a slim container image every step that imports ``cv2`` (OCR,
faces, visual descriptors) fails. The project installs the headless build and
keeps rapidocr's request for the GUI one out (``[tool.uv] exclude-dependencies``);
these tests fail if an install brings the GUI build back."""

from __future__ import annotations

import importlib.metadata as md
import shutil
import subprocess
from pathlib import Path

import pytest

GUI_LIBS = ("libGL.so", "libGLX.so", "libX11.so", "libgthread-2.0.so")


def _cv2_extension() -> Path:
    import cv2

    found = sorted(Path(cv2.__file__).parent.glob("cv2*.so"))
    assert found, f"no compiled cv2 extension beside {cv2.__file__}"
    return found[0]


def test_cv2_comes_from_the_headless_distribution_only():
    installed = {d.metadata["Name"].lower() for d in md.distributions()}
    assert "opencv-python-headless" in installed
    assert "opencv-python" not in installed, "the GUI build is installed beside the headless one: both provide cv2"
    owned = {str(f) for f in md.files("opencv-python-headless") or []}
    assert any(f.startswith("cv2/") and f.endswith(".so") for f in owned)
    assert f"cv2/{_cv2_extension().name}" in owned


@pytest.mark.skipif(shutil.which("ldd") is None, reason="ldd reads ELF dependencies; absent on non-glibc hosts")
def test_cv2_links_no_gui_library():
    out = subprocess.run(["ldd", str(_cv2_extension())], capture_output=True, text=True, check=True).stdout
    linked = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert not [lib for lib in linked if lib.startswith(GUI_LIBS)], out


def test_haar_cascades_ship_with_the_headless_build():
    import cv2

    assert (Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml").is_file()
