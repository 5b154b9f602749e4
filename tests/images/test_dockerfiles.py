"""The container images' runtime stages install exactly the Debian packages that hold the
shared libraries the built binaries link (their ELF NEEDED entries), beyond the base image."""

import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = ROOT / "target" / "debug"
# In every runtime base image (debian-slim, distroless/cc): glibc and libgcc.
BASE_PACKAGES = {"libc6", "libgcc-s1"}


def runtime_packages(dockerfile: pathlib.Path) -> set[str]:
    text = dockerfile.read_text()
    last_stage = text[text.rindex("\nFROM "):]
    packages = set()
    for cmd in re.findall(r"apt-get install([^&]*)", last_stage.replace("\\\n", " ")):
        packages |= {w for w in cmd.split() if not w.startswith("-")}
    return packages


def linked_packages(binary: pathlib.Path) -> set[str]:
    dynamic = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dynamic)
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    packages = set()
    for lib in needed:
        m = re.search(rf"^\s*{re.escape(lib)} \(.*x86-64.*\) => (\S+)$", cache, re.M) or re.search(
            rf"^\s*{re.escape(lib)} .* => (\S+)$", cache, re.M
        )
        assert m, f"{lib} (needed by {binary.name}) is not in the linker cache"
        path = pathlib.Path(m.group(1)).resolve()
        owner = subprocess.run(["dpkg", "-S", str(path)], capture_output=True, text=True)
        if owner.returncode != 0:  # merged /usr: dpkg knows the /lib path
            owner = subprocess.run(["dpkg", "-S", str(path).replace("/usr/lib/", "/lib/", 1)],
                                   capture_output=True, text=True, check=True)
        packages.add(owner.stdout.split(":")[0].strip())
    return packages


@pytest.mark.parametrize("crate", ["worker", "operator"])
def test_runtime_stage_installs_exactly_the_linked_libraries(crate):
    binary = TARGET / f"kamera-{crate}"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run `cargo build --workspace --bins` (make test does)")
    needed = linked_packages(binary) - BASE_PACKAGES
    installed = runtime_packages(ROOT / crate / "Dockerfile")
    assert needed <= installed, f"{crate}/Dockerfile runtime stage lacks {sorted(needed - installed)}"
    assert installed <= needed, f"{crate}/Dockerfile runtime stage installs unneeded {sorted(installed - needed)}"


@pytest.mark.parametrize("crate", ["worker", "operator"])
def test_images_run_as_non_root(crate):
    text = (ROOT / crate / "Dockerfile").read_text()
    last_stage = text[text.rindex("\nFROM "):]
    user = re.search(r"^USER (\S+)", last_stage, re.M)
    assert user and not user.group(1).startswith(("0", "root")), f"{crate} image runs as root"
    assert "--locked" in text, f"{crate} image must build with the committed Cargo.lock"
