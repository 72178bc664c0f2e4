import pytest


@pytest.fixture(autouse=True)
def _config_dir(tmp_path, monkeypatch):
    """The panel remembers its project in a settings file: under tmp_path in tests, never the user's."""
    monkeypatch.setenv("NAPARI_CELLSTATE_CONFIG_DIR", str(tmp_path / "config"))
