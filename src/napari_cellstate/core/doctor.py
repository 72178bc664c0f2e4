"""Machine checks for ``napari-cellstate doctor`` and the btrack rebuild.

Each check returns a :class:`Check` (one line for the user). Checks that could
hang or crash the caller (OpenGL) run in a subprocess.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .track import btrack_library_path, check_btrack_library

__all__ = ["BtrackFixError", "Check", "check_julia", "check_opengl", "check_torch", "fix_btrack", "run_checks"]

_CXX_FLAGS = ["-c", "-std=c++11", "-m64", "-fPIC", "-O3", "-DDEBUG=false", "-DBUILD_SHARED_LIB"]


@dataclass(frozen=True)
class Check:
    """Outcome of one check: ``ok`` is None for optional things that are absent."""

    name: str
    ok: bool | None
    detail: str

    def line(self) -> str:
        """The check as one line of text."""
        mark = {True: "ok  ", False: "FAIL", None: "n/a "}[self.ok]
        return f"[{mark}] {self.name}: {self.detail}"


def check_btrack() -> Check:
    """Check that btrack's compiled library loads here."""
    loads, detail = check_btrack_library()
    if not loads:
        detail += "; fix: napari-cellstate doctor --fix-btrack"
    return Check("btrack", loads, detail)


def check_opengl(timeout_s: float = 60.0) -> Check:
    """Can a napari (vispy, Qt) OpenGL canvas be made? Probed in a subprocess.

    A headless install (no Qt bindings: API and command line only) is not a failure.
    """
    import importlib.util

    if not any(importlib.util.find_spec(name) for name in ("PyQt6", "PyQt5", "PySide6", "PySide2")):
        return Check(
            "OpenGL",
            None,
            "headless install (no Qt): the API and command line work; for the napari widgets "
            "pip install 'napari-cellstate[pyqt6]'",
        )
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return Check(
            "OpenGL",
            None,
            "no display (headless machine): the API and command line work; for the widgets run under Xvfb "
            "(xvfb-run -a napari)",
        )
    try:
        probe = subprocess.run(
            [sys.executable, "-m", "napari_cellstate.gui._gl_probe"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Check("OpenGL", False, f"making a canvas took over {timeout_s:.0f} s")
    lines = (probe.stdout + probe.stderr).strip().splitlines()
    last = lines[-1] if lines else "no output"
    if probe.returncode == 0:
        return Check("OpenGL", True, last)
    hint = "on a headless machine run under Xvfb (xvfb-run -a ...)"
    return Check("OpenGL", False, f"no canvas ({last}); {hint}")


def check_torch() -> Check:
    """Torch version and the device training would use."""
    try:
        import torch
    except ImportError:
        return Check("torch", False, "not installed: pip install torch")
    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)})"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = "mps"
    else:
        device = f"cpu ({torch.get_num_threads()} threads)"
    return Check("torch", True, f"{torch.__version__}, device {device}")


def check_julia() -> Check:
    """Is a Julia runtime available for the PySR backend? (PySR is not imported.)."""
    from .symbolic.engines import julia_available  # one rule for "is Julia there", shared with the engine

    if julia_available():
        return Check("Julia (PySR)", True, f"found {os.environ.get('PYTHON_JULIAPKG_EXE') or shutil.which('julia')}")
    return Check(
        "Julia (PySR)",
        None,
        "not found: the PySR backend is unavailable offline; symbolic regression uses pyoperon",
    )


def run_checks() -> list[Check]:
    """All checks, in the order the user reads them."""
    return [check_btrack(), check_opengl(), check_torch(), check_julia()]


class BtrackFixError(RuntimeError):
    """The btrack library could not be rebuilt; the message says what to install."""


def _find_compiler() -> str:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    raise BtrackFixError(
        "No C++ compiler found. Install one, then run this again: "
        "Debian/Ubuntu `sudo apt-get install g++`, Fedora `sudo dnf install gcc-c++`, "
        "macOS `xcode-select --install`, conda `conda install -c conda-forge cxx-compiler`."
    )


def _pip_download(requirement: str, dest: Path, *extra: str) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", *extra, requirement, "-d", str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    found = sorted(p for p in dest.iterdir() if p.is_file())
    if done.returncode != 0 or not found:
        raise BtrackFixError(
            f"Could not download {requirement} from the package index:\n{done.stderr.strip()[-800:]}\n"
            "Without network access, pass the files with --btrack-sdist and --eigen-dir."
        )
    return found[-1]


def _eigen_headers(workdir: Path, eigen_dir: Path | None) -> Path:
    """A folder holding ``Eigen/Dense``: given, from the system, or from PyPI's cmeel-eigen."""
    candidates = [eigen_dir] if eigen_dir else [Path("/usr/include/eigen3"), Path("/usr/local/include/eigen3")]
    for folder in candidates:
        if folder and (folder / "Eigen" / "Dense").exists():
            return folder
    if eigen_dir:
        raise BtrackFixError(f"{eigen_dir} has no Eigen/Dense header.")
    wheel = _pip_download("cmeel-eigen", workdir / "eigen-wheel", "--only-binary", ":all:")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(workdir / "eigen")  # noqa: S202 - zipfile strips absolute and '..' paths
    found = next((p.parent.parent for p in (workdir / "eigen").rglob("Eigen/Dense")), None)
    if found is None:
        raise BtrackFixError(f"{wheel.name} holds no Eigen headers.")
    return found


def _loads_in_fresh_process(library: Path) -> tuple[bool, str]:
    probe = subprocess.run(
        [sys.executable, "-c", f"import ctypes; ctypes.CDLL({str(library)!r})"],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.returncode == 0, probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else ""


def fix_btrack(
    *,
    sdist: Path | None = None,
    eigen_dir: Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Rebuild btrack's library from btrack's own sources with this machine's compiler.

    Uses the sdist of the installed btrack version and Eigen headers (system,
    ``eigen_dir``, or PyPI's ``cmeel-eigen``), checks the new library loads in
    a fresh process, then swaps it in atomically (the old one is kept as
    ``libtracker.so.orig``).

    Returns
    -------
    Path
        The installed library.
    """
    target = btrack_library_path()
    if not force and check_btrack_library()[0]:
        log(f"btrack's library already loads ({target}); nothing to do (use --force to rebuild).")
        return target
    compiler = _find_compiler()
    version = metadata.version("btrack")
    with tempfile.TemporaryDirectory(prefix="cellstate-btrack-") as tmp:
        workdir = Path(tmp)
        if sdist is None:
            log(f"Downloading btrack {version} sources ...")
            sdist = _pip_download(f"btrack=={version}", workdir / "sdist", "--no-binary", ":all:")
        with tarfile.open(sdist) as archive:
            archive.extractall(workdir / "src", filter="data")
        source_root = next((workdir / "src").glob("btrack-*/btrack"), None)
        if source_root is None or not (source_root / "src").is_dir():
            raise BtrackFixError(f"{sdist} is not a btrack source distribution (no btrack/src folder).")
        eigen = _eigen_headers(workdir, eigen_dir)
        (source_root / "include" / "eigen").unlink(missing_ok=True)
        (source_root / "include" / "eigen").symlink_to(eigen, target_is_directory=True)

        sources = sorted((source_root / "src").glob("*.cc"))
        log(f"Compiling {len(sources)} files with {compiler} ...")

        def compile_one(source: Path) -> subprocess.CompletedProcess:
            cmd = [
                compiler,
                *_CXX_FLAGS,
                f"-I{source_root / 'include'}",
                str(source),
                "-o",
                str(source.with_suffix(".o")),
            ]
            return subprocess.run(cmd, capture_output=True, text=True, check=False)

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            for done in pool.map(compile_one, sources):
                if done.returncode != 0:
                    raise BtrackFixError(f"Compiling btrack failed:\n{done.stderr[-1500:]}")
        built = workdir / target.name
        link = subprocess.run(
            [compiler, "-shared", "-Wl,--no-undefined", "-o", str(built), *[str(s.with_suffix(".o")) for s in sources]],
            capture_output=True,
            text=True,
            check=False,
        )
        if link.returncode != 0:
            raise BtrackFixError(f"Linking btrack failed:\n{link.stderr[-1500:]}")
        loads, why = _loads_in_fresh_process(built)
        if not loads:
            raise BtrackFixError(f"The rebuilt library does not load either: {why}")
        backup = target.with_name(target.name + ".orig")
        if target.exists() and not backup.exists():
            shutil.copy2(target, backup)
        staged = target.with_name(target.name + ".new")
        shutil.copy2(built, staged)
        os.replace(staged, target)
    loads, why = _loads_in_fresh_process(target)
    if not loads:
        raise BtrackFixError(f"Installed {target} but it does not load: {why}")
    log(f"btrack's library rebuilt and installed: {target}")
    return target
