import subprocess
import sys

import npe2
import pytest


def test_manifest_is_found_and_its_imports_resolve():
    manifest = npe2.PluginManifest.from_distribution("napari-cellstate")
    manifest.validate_imports()
    assert [s.display_name for s in manifest.contributions.sample_data] == ["Synthetic H2B time-lapse"]


@pytest.mark.slow
def test_npe2_validate_command_passes():
    done = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-cellstate", "--imports"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
