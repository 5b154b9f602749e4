"""Installing the SDK from a checkout (`pip install ./sdk/python`) leaves nothing for git to
pick up: setuptools writes `build/` and `src/kamera.egg-info/` next to the sources."""

import pathlib
import subprocess

SDK = pathlib.Path(__file__).resolve().parents[1]


def test_pip_install_artefacts_are_ignored_by_git():
    for artefact in ["build/lib/kamera/__init__.py", "src/kamera.egg-info/PKG-INFO"]:
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", artefact], cwd=SDK)
        assert ignored.returncode == 0, f"sdk/python/{artefact} is not ignored by git"
