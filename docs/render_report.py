"""Render a run's HTML report to a PNG with headless Chromium (Debian package ``chromium``), as a reader sees it.

Usage: python docs/render_report.py PROJECT_OR_REPORT.html [--out docs/images/report.png] [--height 2400]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def report_path(given: Path) -> Path:
    """The report file of a project folder, or the file given."""
    return given / "flow" / "report" / "report.html" if given.is_dir() else given


def render(report: Path, out: Path, width: int = 1280, height: int = 2400) -> Path:
    """Screenshot ``report`` into ``out`` (PNG); raises if Chromium is missing or fails."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("Chromium is not installed: `apt-get install -y chromium`.")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        command = [
            browser,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={out.absolute()}",
            f"--window-size={width},{height}",
            report.absolute().as_uri(),
        ]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("report", type=Path, help="a project folder or its report.html")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "images" / "report.png")
    parser.add_argument("--height", type=int, default=2400)
    args = parser.parse_args()
    print(render(report_path(args.report), args.out, height=args.height))


if __name__ == "__main__":
    main()
