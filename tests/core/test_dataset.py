import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image
from skimage.transform import resize

from napari_cellstate.core.config import CropConfig
from napari_cellstate.core.crops import CropResult, extract_crops, standardise_crops
from napari_cellstate.core.objects import OBJECT_COLUMNS, validate_objects
from napari_cellstate.core.project import (
    Project,
    ProjectError,
    append_crop_dataset,
    import_crop_folder,
    load_crop_dataset,
    open_or_create,
    read_crop_folder,
    split_by_track,
    write_crop_dataset,
)


def objects_of(sample):
    return validate_objects(sample.objects.assign(object_id=sample.objects.track_id))


@pytest.fixture(scope="module")
def small_result(small_sample):
    return extract_crops(small_sample.movie, objects_of(small_sample), CropConfig(), pixel_size_um=0.33)


@pytest.fixture(scope="module")
def default_result(default_sample):
    objects = objects_of(default_sample)
    return extract_crops(default_sample.movie, objects[objects.t < 12], CropConfig(), pixel_size_um=0.33)


def hidden_leftovers(project: Project) -> list[str]:
    """Anything but the lock file that a write left hidden in the project, and runs that are not live."""
    hidden = [p.name for p in project.path.iterdir() if p.name.startswith(".") and p.name != ".lock"]
    live = Project.open(project.path).run_id
    runs = (
        [p.name for p in (project.path / "runs").iterdir() if p.name != live]
        if (project.path / "runs").exists()
        else []
    )
    return sorted(hidden + runs)


# --- project folder ---------------------------------------------------------------------------------------------------


def test_create_writes_project_json(tmp_path):
    project = Project.create(tmp_path / "new" / "project")
    info = json.loads((project.path / "project.json").read_text())
    assert info["format"] == "napari-cellstate project"
    assert info["version"] == 2
    assert info["run"] is None
    assert info["created"].endswith("+00:00")
    assert info["napari_cellstate"]
    assert Project.open(project.path) == project
    assert hidden_leftovers(project) == []  # the atomic write left no temporary file


def test_open_or_create_creates_in_an_empty_folder_then_opens(tmp_path):
    created = open_or_create(tmp_path)
    assert (tmp_path / "project.json").exists()
    assert open_or_create(tmp_path).info == created.info


def test_a_foreign_non_empty_folder_is_not_a_project(tmp_path):
    (tmp_path / "holiday.jpg").write_bytes(b"...")
    for call in (Project.open, open_or_create):
        with pytest.raises(ProjectError, match="is not a napari-cellstate project") as err:
            call(tmp_path)
        assert "choose an empty folder or an existing project" in str(err.value)
        assert str(tmp_path) in str(err.value)
    with pytest.raises(ProjectError, match="not empty"):
        Project.create(tmp_path)


def test_missing_or_empty_folder_says_how_to_create(tmp_path):
    with pytest.raises(ProjectError, match=r"does not exist.*create one"):
        Project.open(tmp_path / "nowhere")
    with pytest.raises(ProjectError, match=r"empty folder, not a project yet.*Project.create"):
        Project.open(tmp_path)


def test_creating_over_a_project_is_refused(tmp_path):
    Project.create(tmp_path)
    with pytest.raises(ProjectError, match=r"already a napari-cellstate project.*Project.open"):
        Project.create(tmp_path)


def test_corrupted_project_json_names_the_fix(tmp_path):
    Project.create(tmp_path)
    (tmp_path / "project.json").write_text('{"format": "napari-cellstate proj')
    with pytest.raises(ProjectError, match="damaged") as err:
        Project.open(tmp_path)
    message = str(err.value)
    assert str(tmp_path / "project.json") in message
    assert "Restore it from a backup" in message
    # the suggested contents really do repair it
    fresh = message.split("replace its contents with ")[1].split(" to open")[0]
    (tmp_path / "project.json").write_text(fresh)
    assert Project.open(tmp_path).info["version"] == 2  # a version-1 file, migrated on opening


def test_project_json_of_another_program(tmp_path):
    (tmp_path / "project.json").write_text(json.dumps({"format": "some other tool", "version": 3}))
    with pytest.raises(ProjectError, match=r"'some other tool'.*choose an empty folder or an existing project"):
        Project.open(tmp_path)


def test_project_of_a_newer_version_asks_for_an_update(tmp_path):
    Project.create(tmp_path)
    info = json.loads((tmp_path / "project.json").read_text())
    (tmp_path / "project.json").write_text(json.dumps({**info, "version": 3}))
    with pytest.raises(ProjectError, match=r"newer napari-cellstate \(project version 3.*pip install -U"):
        Project.open(tmp_path)


# --- write, load, append ----------------------------------------------------------------------------------------------


def test_write_and_load_round_trip(tmp_path, small_result, small_sample):
    project = Project.create(tmp_path)
    write_crop_dataset(project, small_result, "small.tif", 0.33)
    data = load_crop_dataset(tmp_path)  # a path works too

    np.testing.assert_array_equal(data.crops[:], small_result.crops)
    assert data.crops.dtype == np.float32
    assert data.crops.chunks[0] == 256
    objects = data.objects
    assert list(objects.columns[: len(OBJECT_COLUMNS)]) == list(OBJECT_COLUMNS)
    assert list(objects.columns[len(OBJECT_COLUMNS) : len(OBJECT_COLUMNS) + 3]) == ["source", "crop_at_border", "split"]
    for name, dtype in OBJECT_COLUMNS.items():
        assert objects[name].dtype == dtype, name
    assert objects.crop_at_border.dtype == bool
    assert objects.source.dtype == "string"
    assert objects.split.dtype == "string"
    assert objects.state.dtype == "category"  # extra columns keep their type
    assert list(objects.state.cat.categories) == list(small_sample.objects.state.cat.categories)
    expected = validate_objects(small_result.objects).reset_index(drop=True)
    for name in [*OBJECT_COLUMNS, "crop_at_border", "state", "neighbour_count"]:
        pd.testing.assert_series_equal(objects[name], expected[name], check_dtype=False, check_categorical=True)
    assert (objects.source == "small.tif").all()
    assert set(objects.split) == {"train", "test"}

    meta = data.metadata
    assert meta["format"] == "napari-cellstate crops"
    assert meta["n_crops"] == len(small_result.crops)
    assert set(meta["versions"]) >= {"napari_cellstate", "numpy", "zarr", "scikit-image"}
    assert meta["crop_settings"]["size_px"] == 64
    assert meta["crop_settings"]["standardise"] is True
    assert meta["crop_settings"]["clip"] == 4.0
    assert meta["sources"] == [
        {
            "name": "small.tif",
            "pixel_size_um": 0.33,
            "shape": [24, 256, 256],
            "n_crops": len(small_result.crops),
            "crop_settings": meta["crop_settings"],
            "split": {"by": ["source", "track_id"], "test_fraction": 0.1, "seed": 0},
        }
    ]
    assert meta["created"] == meta["modified"]


def test_store_is_a_clean_zarr_hierarchy_and_the_table_is_parquet(tmp_path, small_result):
    import warnings

    import pyarrow.parquet as pq
    import zarr

    project = Project.create(tmp_path)
    write_crop_dataset(project, small_result, "small.tif")
    project = Project.open(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # zarr warns about files it does not recognise
        group = zarr.open_group(project.crops_path, mode="r")
        assert sorted(group.keys()) == ["crops"]
    table = pq.read_table(project.run_path / "objects.parquet")
    assert "label" in table.column_names
    assert table.num_rows == len(small_result.crops)


def test_write_replaces_the_dataset(tmp_path, small_result):
    project = Project.create(tmp_path)
    write_crop_dataset(project, small_result, "first.tif")
    half = CropResult(small_result.crops[:100], small_result.objects.iloc[:100], small_result.settings)
    data = write_crop_dataset(project, half, "second.tif")
    assert len(data) == 100
    assert [s["name"] for s in data.metadata["sources"]] == ["second.tif"]
    assert hidden_leftovers(project) == []


def test_extra_columns_nan_and_text_survive(tmp_path, small_result):
    objects = small_result.objects.assign(
        note=["a"] * 3 + [None] * (len(small_result.objects) - 3),
        score=np.linspace(0, 1, len(small_result.objects)),
        count=pd.array([1, None] * (len(small_result.objects) // 2) + [3] * (len(small_result.objects) % 2), "Int64"),
    )
    objects.loc[objects.index[0], "area"] = np.nan  # unknown stays unknown, not 0
    project = Project.create(tmp_path)
    data = write_crop_dataset(project, CropResult(small_result.crops, objects, small_result.settings), "s")
    assert np.isnan(data.objects.area.iloc[0])
    assert data.objects.note.iloc[:3].tolist() == ["a", "a", "a"]
    assert pd.isna(data.objects.note.iloc[3])  # missing text stays missing
    np.testing.assert_array_equal(data.objects.score, objects.score)
    assert data.objects["count"].dtype == "Int64"
    assert data.objects["count"].isna().sum() == objects["count"].isna().sum()


def test_append_a_second_movie(tmp_path, small_result, default_result):
    project = Project.create(tmp_path)
    first = write_crop_dataset(project, small_result, "small.tif", 0.33)
    first_objects, first_crops = first.objects.copy(), first.crops[:]
    both = append_crop_dataset(project, default_result, "default.tif", 0.33, seed=5)

    assert len(both) == len(small_result.crops) + len(default_result.crops)
    assert both.crops.shape == (len(both), 64, 64)
    assert [s["name"] for s in both.metadata["sources"]] == ["small.tif", "default.tif"]
    assert both.metadata["sources"][1]["shape"] == [60, 512, 512]
    assert both.metadata["created"] == first.metadata["created"]
    # old rows, crops and splits are unchanged; new crops follow them
    n_old = len(first_objects)
    pd.testing.assert_frame_equal(both.objects.iloc[:n_old], first_objects)
    np.testing.assert_array_equal(both.crops[:n_old], first_crops)
    np.testing.assert_array_equal(both.crops[n_old:], default_result.crops)
    assert (both.objects.source.iloc[n_old:] == "default.tif").all()
    # both movies have a track 1, ...: tracks of different sources are different groups
    shared = set(small_result.objects.track_id) & set(default_result.objects.track_id)
    assert len(shared) > 5
    sides = both.objects.groupby(["source", "track_id"]).split.nunique()
    assert sides.max() == 1
    new = both.objects.iloc[n_old:].reset_index(drop=True)
    expected = split_by_track(new.assign(split=""), 0.1, seed=5)
    pd.testing.assert_series_equal(new.split, expected, check_names=False)
    assert hidden_leftovers(project) == []


def test_append_creates_the_dataset_when_there_is_none(tmp_path, small_result):
    project = Project.create(tmp_path)
    assert len(append_crop_dataset(project, small_result, "small.tif")) == len(small_result.crops)


def test_append_refuses_other_crop_sizes_settings_and_repeated_sources(tmp_path, small_sample, small_result):
    project = Project.create(tmp_path)
    write_crop_dataset(project, small_result, "small.tif")
    objects = objects_of(small_sample).iloc[:20]
    with pytest.raises(ValueError, match=r"32 x 32 px but the dataset's are 64 x 64 px.*size_px=64"):
        append_crop_dataset(project, extract_crops(small_sample.movie, objects, CropConfig(size_px=32)), "b.tif")
    with pytest.raises(ValueError, match="standardise=False but the dataset's with standardise=True"):
        append_crop_dataset(project, extract_crops(small_sample.movie, objects, CropConfig(standardise=False)), "c")
    with pytest.raises(ValueError, match=r"already holds crops from source 'small.tif'"):
        append_crop_dataset(project, extract_crops(small_sample.movie, objects, CropConfig()), "small.tif")
    assert len(load_crop_dataset(project)) == len(small_result.crops)


def test_nothing_to_write_is_refused(tmp_path, small_result):
    empty = CropResult(small_result.crops[:0], small_result.objects.iloc[:0], small_result.settings)
    with pytest.raises(ValueError, match="no crops"):
        write_crop_dataset(Project.create(tmp_path), empty, "s")


# --- splits -----------------------------------------------------------------------------------------------------------


def test_split_is_grouped_by_track_and_near_the_fraction(default_sample):
    objects = objects_of(default_sample).assign(source="default.tif")
    split = split_by_track(objects)
    assert split.index.equals(objects.index)
    assert set(split) == {"train", "test"}
    assert objects.groupby(["source", "track_id"]).apply(lambda g: split[g.index].nunique()).max() == 1
    assert 0.05 <= (split == "test").mean() <= 0.15
    pd.testing.assert_series_equal(split, split_by_track(objects))  # deterministic
    assert not split.equals(split_by_track(objects, seed=1))


def test_untracked_rows_are_each_their_own_group():
    objects = pd.DataFrame({"track_id": 0, "object_id": np.arange(1, 1001), "source": "s"})
    split = split_by_track(objects, test_fraction=0.2, seed=3)
    assert (split == "test").sum() == 200


def test_split_keeps_sources_apart():
    objects = pd.DataFrame(
        {"track_id": [1] * 50 + [1] * 50, "object_id": np.arange(100), "source": ["a"] * 50 + ["b"] * 50}
    )
    split = split_by_track(objects, test_fraction=0.5, seed=0)
    assert split.iloc[:50].nunique() == 1
    assert split.iloc[50:].nunique() == 1
    assert (split == "test").sum() == 50


def test_split_rejects_a_bad_fraction():
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_by_track(pd.DataFrame({"track_id": [1]}), test_fraction=1.5)


# --- atomic writes ----------------------------------------------------------------------------------------------------


def test_a_write_failing_midway_leaves_the_old_dataset(tmp_path, small_result, monkeypatch):
    from napari_cellstate.core.project import dataset as dataset_module

    project = Project.create(tmp_path)
    old = write_crop_dataset(project, small_result, "old.tif")
    old_crops, old_objects = old.crops[:], old.objects.copy()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(dataset_module, "write_table", crash)  # crops written, table not yet
    half = CropResult(small_result.crops[:50], small_result.objects.iloc[:50], small_result.settings)
    with pytest.raises(OSError, match="disk full"):
        write_crop_dataset(project, half, "new.tif")
    with pytest.raises(OSError, match="disk full"):
        append_crop_dataset(project, half, "new.tif")

    again = load_crop_dataset(project)
    np.testing.assert_array_equal(again.crops[:], old_crops)
    pd.testing.assert_frame_equal(again.objects, old_objects)
    assert hidden_leftovers(project) == []


def test_a_crash_before_the_commit_leaves_the_old_run_and_is_cleaned_up(tmp_path, small_result, monkeypatch):
    from napari_cellstate.core.project import runs

    project = Project.create(tmp_path)
    write_crop_dataset(project, small_result, "old.tif")

    real_write = runs.write_json_atomic

    def power_cut(path, data):
        if Path(path).name == "project.json":
            raise OSError("power cut")
        return real_write(path, data)

    monkeypatch.setattr(runs, "write_json_atomic", power_cut)  # the run is in runs/, project.json not yet rewritten
    with pytest.raises(OSError, match="power cut"):
        write_crop_dataset(
            project, CropResult(small_result.crops[:5], small_result.objects.iloc[:5], small_result.settings), "new"
        )
    monkeypatch.undo()
    assert len(load_crop_dataset(project)) == len(small_result.crops)
    assert len(hidden_leftovers(project)) == 1  # the run that never went live
    (tmp_path / ".staging-0123456789abcdef").mkdir()  # and what a killed process leaves while staging
    data = append_crop_dataset(
        project, CropResult(small_result.crops[:5], small_result.objects.iloc[:5], small_result.settings), "b"
    )
    assert [s["name"] for s in data.metadata["sources"]] == ["old.tif", "b"]
    assert hidden_leftovers(project) == []


# --- damaged stores ---------------------------------------------------------------------------------------------------


def test_loading_without_a_dataset_says_how_to_make_one(tmp_path):
    with pytest.raises(ProjectError, match=r"no crop dataset yet.*track.*import_crop_folder"):
        load_crop_dataset(Project.create(tmp_path))


def _chunk_files(project):
    return sorted(p for p in (Project.open(project.path).crops_path / "crops" / "c").rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: (p.crops_path / "zarr.json").unlink(),
        lambda p: (p.crops_path / "zarr.json").write_text("{not json"),
        lambda p: (p.crops_path / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group"})),
        lambda p: (p.run_path / "objects.parquet").unlink(),
        lambda p: (p.run_path / "objects.parquet").write_bytes((p.run_path / "objects.parquet").read_bytes()[:-300]),
        lambda p: (p.crops_path / "crops" / "zarr.json").unlink(),
    ],
    ids=["no-metadata", "bad-json", "no-attributes", "no-table", "truncated-table", "no-crops"],
)
def test_a_damaged_store_names_the_fix(tmp_path, small_result, damage):
    project = Project.create(tmp_path)
    write_crop_dataset(project, small_result, "s")
    project = Project.open(tmp_path)
    damage(project)
    with pytest.raises(ProjectError, match=r"damaged|missing") as err:
        load_crop_dataset(project)
    assert str(project.run_path) in str(err.value)
    assert "again" in str(err.value)
    # and writing anew repairs it
    assert len(write_crop_dataset(project, small_result, "s")) == len(small_result.crops)


@pytest.mark.parametrize(
    "damage",
    [
        lambda f: f.unlink(),  # zarr reads a missing chunk as zeros
        lambda f: f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2]),
        lambda f: f.write_bytes(np.random.default_rng(0).bytes(len(f.read_bytes()))),
    ],
    ids=["deleted", "truncated", "random-bytes"],
)
def test_a_damaged_crop_chunk_is_refused_not_read_as_zeros(tmp_path, small_result, damage):
    project = Project.create(tmp_path)
    write_crop_dataset(project, small_result, "s")
    chunks = _chunk_files(project)
    assert len(chunks) == -(-len(small_result.crops) // 256)
    damage(chunks[1])
    data = load_crop_dataset(project)
    np.testing.assert_array_equal(data.crops[:10], small_result.crops[:10])  # other chunks still read
    with pytest.raises(ProjectError, match=r"chunk 1 \(crops 256-.*(missing or altered|cannot be read)"):
        np.asarray(data.crops)


def test_a_store_of_a_newer_version_asks_for_an_update(tmp_path, small_result):
    project = Project.create(tmp_path)
    write_crop_dataset(project, small_result, "s")
    meta_file = Project.open(tmp_path).crops_path / "zarr.json"
    meta = json.loads(meta_file.read_text())
    meta["attributes"]["version"] = 9
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ProjectError, match=r"newer napari-cellstate.*pip install -U"):
        load_crop_dataset(project)


# --- importing a folder of crops --------------------------------------------------------------------------------------


def disc(shape, centre, radius, value, dtype):
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    image = np.full(shape, 10, dtype=np.float64)
    image[(rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2] = value
    return image.astype(dtype)


@pytest.fixture
def crop_folder(tmp_path):
    folder = tmp_path / "annotated"
    (folder / "interphase").mkdir(parents=True)
    (folder / "metaphase").mkdir()
    Image.fromarray(disc((64, 64), (32, 32), 15, 200, np.uint8)).save(folder / "interphase" / "cell_a.png")
    Image.fromarray(disc((80, 80), (40, 40), 20, 180, np.uint8)).save(folder / "interphase" / "cell_b.png")
    rgb = np.stack([disc((64, 64), (30, 30), 12, v, np.uint8) for v in (250, 120, 30)], axis=-1)
    Image.fromarray(rgb).save(folder / "interphase" / "cell_c.png")
    tifffile.imwrite(folder / "metaphase" / "cell_d.tif", disc((48, 48), (24, 24), 6, 3000, np.uint16))
    tifffile.imwrite(folder / "metaphase" / "cell_e.tiff", disc((60, 40), (30, 20), 8, 2500, np.uint16))
    (folder / "metaphase" / "notes.txt").write_text("not an image")
    positions = {"interphase/cell_a.png": {"t": 3, "y": 100.5, "x": 20.0}, "cell_d": {"frame": 7, "y": 5, "x": 6}}
    (tmp_path / "positions.json").write_text(json.dumps(positions))
    return folder


def test_import_crop_folder(crop_folder, tmp_path):
    project = Project.create(tmp_path / "project")
    data = import_crop_folder(crop_folder, project, CropConfig(), positions_json=tmp_path / "positions.json")
    objects = data.objects.set_index("file")
    assert data.crops.shape == (5, 64, 64)
    assert objects.label.to_dict() == {
        "interphase/cell_a.png": "interphase",
        "interphase/cell_b.png": "interphase",
        "interphase/cell_c.png": "interphase",
        "metaphase/cell_d.tif": "metaphase",
        "metaphase/cell_e.tiff": "metaphase",
    }
    assert objects.label.dtype == "string"
    assert (objects.source == "annotated").all()
    assert objects.loc["interphase/cell_a.png", ["t", "y", "x"]].tolist() == [3, 100.5, 20.0]
    assert objects.loc["metaphase/cell_d.tif", ["t", "y", "x"]].tolist() == [7, 5.0, 6.0]
    assert objects.loc["interphase/cell_b.png", "t"] == -1  # no position given: unknown
    assert np.isnan(objects.loc["interphase/cell_b.png", ["y", "x"]].astype(float)).all()
    assert (objects.object_id.to_numpy() == np.arange(1, 6)).all()
    assert (objects.track_id == 0).all()
    # standardised and clipped like extracted crops
    crops = data.crops[:]
    assert np.abs(crops).max() == 4
    raw = read_crop_folder(crop_folder, CropConfig(standardise=False)).crops
    np.testing.assert_allclose(crops, standardise_crops(raw.copy(), clip=4.0), atol=1e-6)
    unclipped = read_crop_folder(crop_folder, CropConfig(clip=None)).crops.astype(np.float64)
    np.testing.assert_allclose(unclipped.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(unclipped.std(axis=(1, 2)), 1, atol=1e-5)
    meta = data.metadata["crop_settings"]
    assert meta["converted_to_grey"] == ["interphase/cell_c.png"]
    assert meta["classes"] == {"interphase": 3, "metaphase": 2}


def test_imported_crops_are_resized_and_keep_their_content(crop_folder):
    result = read_crop_folder(crop_folder, CropConfig(standardise=False))
    by_file = dict(zip(result.objects.file, result.crops, strict=True))
    # 64 x 64 PNG: untouched
    np.testing.assert_array_equal(by_file["interphase/cell_a.png"], disc((64, 64), (32, 32), 15, 200, np.uint8))
    # 48 x 48 TIFF: bilinear upsampling to 64
    small = disc((48, 48), (24, 24), 6, 3000, np.uint16).astype(np.float64)
    expected = resize(small, (64, 64), order=1, mode="reflect", preserve_range=True)
    np.testing.assert_allclose(by_file["metaphase/cell_d.tif"], expected, rtol=1e-5)
    # 60 x 40 TIFF: padded to a square first, so the round nucleus stays round
    tall = by_file["metaphase/cell_e.tiff"]
    bright = tall > 1000
    rows, cols = np.nonzero(bright)
    assert abs((rows.max() - rows.min()) - (cols.max() - cols.min())) <= 1
    # RGB converted to grey by luminance
    grey = by_file["interphase/cell_c.png"]
    assert grey[30, 30] == pytest.approx(0.2125 * 250 + 0.7154 * 120 + 0.0721 * 30, abs=0.01)


def test_import_errors_name_the_problem(tmp_path, crop_folder):
    project = Project.create(tmp_path / "project")
    with pytest.raises(ValueError, match="does not exist"):
        import_crop_folder(tmp_path / "missing", project)
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(flat / "a.png")
    with pytest.raises(ValueError, match=r"no class subfolders.*interphase"):
        import_crop_folder(flat, project)
    (crop_folder / "prophase").mkdir()
    with pytest.raises(ValueError, match=r"class folder .*prophase holds no TIFF or PNG images"):
        import_crop_folder(crop_folder, project)
    (crop_folder / "prophase" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ValueError, match=r"Cannot read the image .*broken\.png"):
        import_crop_folder(crop_folder, project)
    (crop_folder / "prophase" / "broken.png").unlink()
    tifffile.imwrite(crop_folder / "prophase" / "stack.tif", np.zeros((5, 32, 32), np.uint16))
    with pytest.raises(ValueError, match=r"stack\.tif has shape \(5, 32, 32\)"):
        import_crop_folder(crop_folder, project)
    with pytest.raises(ProjectError, match="no crop dataset yet"):
        load_crop_dataset(project)  # nothing was written by the failed imports


def test_positions_json_errors(tmp_path, crop_folder):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{")
    with pytest.raises(ValueError, match="Cannot read the positions file"):
        read_crop_folder(crop_folder, positions_json=bad_json)
    unmatched = tmp_path / "unmatched.json"
    unmatched.write_text(json.dumps({"someone_else.png": {"t": 1, "y": 2, "x": 3}}))
    with pytest.raises(ValueError, match=r"None of the 1 entries .* matches an image"):
        read_crop_folder(crop_folder, positions_json=unmatched)
    incomplete = tmp_path / "incomplete.json"
    incomplete.write_text(json.dumps({"cell_a": {"t": 1, "y": 2}}))
    with pytest.raises(ValueError, match=r"'cell_a'.*needs numbers 't' \(or 'frame'\), 'y' and 'x'"):
        read_crop_folder(crop_folder, positions_json=incomplete)


def test_column_groups_are_added_without_touching_the_crops(tmp_path, small_sample):
    from napari_cellstate.core.project import set_object_columns

    objects = validate_objects(small_sample.objects.assign(object_id=small_sample.objects["track_id"]))
    result = extract_crops(small_sample.movie, objects.iloc[:50], CropConfig(size_px=32))
    write_crop_dataset(open_or_create(tmp_path / "p"), result, "small", 0.33)
    project = Project.open(tmp_path / "p")
    crop_files = {p: p.stat().st_mtime_ns for p in project.crops_path.rglob("*") if p.is_file()}
    latents = pd.DataFrame({"z0": np.arange(50.0), "z1": -np.arange(50.0)})
    model = {"name": "test encoder", "sha256": "ab" * 32}
    updated = set_object_columns(project, latents, group="latents", provenance={"command": "encode", "model": model})
    assert updated.objects["z1"].tolist() == (-np.arange(50.0)).tolist()
    assert updated.provenance["latents"]["model"] == model
    assert updated.provenance["latents"]["command"] == "encode"
    assert updated.provenance["latents"]["columns"] == ["z0", "z1"]
    again = load_crop_dataset(tmp_path / "p")
    np.testing.assert_array_equal(np.asarray(again.crops), result.crops)
    assert {p: p.stat().st_mtime_ns for p in project.crops_path.rglob("*") if p.is_file()} == crop_files
    # replacing the group replaces its columns; another group cannot take them
    set_object_columns(project, latents[["z0"]] * 2, group="latents")
    assert "z1" not in load_crop_dataset(project).objects
    with pytest.raises(ValueError, match="already belong"):
        set_object_columns(project, latents[["z0"]], group="other")
    assert hidden_leftovers(project) == []
    with pytest.raises(ValueError, match="rows given"):
        set_object_columns(tmp_path / "p", latents.iloc[:3], group="latents")
    with pytest.raises(ValueError, match="cannot be replaced"):
        set_object_columns(tmp_path / "p", pd.DataFrame({"area": np.zeros(50)}))


# --- appending many movies: old crops linked, not copied; a kill leaves the old or the new dataset ---------------


def _chunk_inodes(dataset) -> dict[str, int]:
    folder = Path(dataset.crops.path) / "crops" / "c"
    return {str(p.relative_to(folder)): p.stat().st_ino for p in folder.rglob("*") if p.is_file()}


def test_appending_links_the_old_chunks_and_writes_only_the_new_crops(tmp_path, small_result):
    from napari_cellstate.core.project.check import check_project

    project = Project.create(tmp_path)
    dataset = write_crop_dataset(project, small_result, "m0.tif")
    for k in range(1, 4):
        before, full = _chunk_inodes(dataset), len(dataset) // 256
        dataset = append_crop_dataset(project, small_result, f"m{k}.tif")
        after = _chunk_inodes(dataset)
        kept = [key for key in before if int(key.split("/")[0]) < full]
        assert len(kept) == full > 0
        assert all(after[key] == before[key] for key in kept)  # the same file (a hard link): not copied
    assert len(dataset) == 4 * len(small_result.crops)
    np.testing.assert_array_equal(dataset.crops[:], np.concatenate([small_result.crops] * 4))
    assert check_project(project)["n_crops"] == len(dataset)  # every chunk's checksum holds
    assert hidden_leftovers(project) == []


APPEND_SCRIPT = Path(__file__).with_name("_append_script.py")


@pytest.mark.slow
def test_kill_9_during_append_leaves_the_old_or_the_new_dataset(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from napari_cellstate.core.project.check import check_project

    folder, n = tmp_path / "p", 6000
    subprocess.run([sys.executable, str(APPEND_SCRIPT), str(folder), "m0", str(n)], check=True, capture_output=True)
    sources, rng = ["m0"], np.random.default_rng(0)
    for attempt, delay in enumerate(rng.uniform(0.0, 4.0, 6), start=1):
        source = f"m{attempt}"
        process = subprocess.Popen(
            [sys.executable, str(APPEND_SCRIPT), str(folder), source, str(n)], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        state = check_project(folder)  # reads every chunk against its checksum; raises if mixed or damaged
        dataset = load_crop_dataset(folder)
        if state["n_crops"] == (len(sources) + 1) * n:
            sources.append(source)
        assert state["n_crops"] == len(sources) * n
        assert [s["name"] for s in dataset.metadata["sources"]] == sources
        np.testing.assert_array_equal(dataset.crops[::500, 0, 0], np.repeat([int(s[1:]) for s in sources], n)[::500])
    # the next append cleans up what the killed ones left
    subprocess.run([sys.executable, str(APPEND_SCRIPT), str(folder), "m9", "300"], check=True, capture_output=True)
    assert check_project(folder)["n_crops"] == len(sources) * n + 300
    assert hidden_leftovers(Project.open(folder)) == []
