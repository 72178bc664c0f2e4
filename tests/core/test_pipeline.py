import numpy as np
import pytest

from napari_cellstate.core.config import CropConfig
from napari_cellstate.core.movie import MovieError
from napari_cellstate.core.pipeline import relabel_unique, track_and_crop
from napari_cellstate.core.progress import run_to_completion
from napari_cellstate.core.project import Project
from napari_cellstate.core.segment import NoCellsFoundError, detection_scores
from napari_cellstate.core.track_metrics import score_tracking


@pytest.fixture(scope="module")
def pipeline_run(default_sample, tmp_path_factory):
    project = tmp_path_factory.mktemp("project")
    result = track_and_crop(
        default_sample.movie, pixel_size_um=0.33, crops=CropConfig(), project=project, source="synthetic"
    )
    return result, project


@pytest.mark.slow
def test_segmentation_and_tracking_meet_the_bars(default_sample, pipeline_run):
    result, _ = pipeline_run
    truth = default_sample.objects.assign(object_id=default_sample.objects["track_id"])
    assert detection_scores(default_sample.labels, result.labels)["f1"] >= 0.95
    scores = score_tracking(truth, default_sample.labels, result.objects, result.labels)
    assert scores["link_accuracy"] >= 0.95
    assert scores["TRA"] >= 0.9
    assert scores["division_f1_within_2_frames"] >= 0.8


@pytest.mark.slow
def test_every_object_is_tracked_and_cropped_into_the_project(pipeline_run):
    from napari_cellstate.core.project import load_crop_dataset

    result, project = pipeline_run
    assert (result.objects["track_id"] > 0).all()
    assert result.crops.crops.shape == (len(result.objects), 64, 64)
    assert result.objects["object_id"].is_unique
    stored = load_crop_dataset(project)
    assert stored.crops.shape[0] == len(result.objects)
    assert set(stored.objects["split"]) == {"train", "test"}


def test_an_existing_segmentation_skips_segmenting(small_sample):
    result = track_and_crop(small_sample.movie, pixel_size_um=0.33, labels=small_sample.labels)
    assert len(result.objects) == len(small_sample.objects)
    assert result.crops is None
    truth = small_sample.objects.assign(object_id=small_sample.objects["track_id"])
    assert score_tracking(truth, small_sample.labels, result.objects, result.labels)["link_accuracy"] > 0.95


def test_relabel_gives_ids_unique_across_frames():
    labels = np.zeros((3, 8, 8), np.int32)
    labels[:, 1:3, 1:3] = 1
    labels[:, 5:7, 5:7] = 7
    labels[2, 0, 7] = 3  # a frame with three objects
    out = run_to_completion(relabel_unique(labels))
    per_frame = [set(np.unique(frame[frame > 0]).tolist()) for frame in out]
    assert [len(ids) for ids in per_frame] == [2, 2, 3]
    assert set.union(*per_frame) == set(range(1, 8))
    assert ((out > 0) == (labels > 0)).all()


def test_labels_of_another_shape_are_refused(small_sample):
    with pytest.raises(ValueError, match="labels have shape"):
        track_and_crop(small_sample.movie, pixel_size_um=0.33, labels=small_sample.labels[:, :100])


def test_empty_labels_are_refused(small_sample):
    with pytest.raises(NoCellsFoundError, match="no objects"):
        track_and_crop(small_sample.movie, pixel_size_um=0.33, labels=np.zeros_like(small_sample.labels))


def test_rgb_layers_are_refused_with_the_fix(small_sample):
    with pytest.raises(MovieError, match="Split RGB"):
        track_and_crop(small_sample.movie, pixel_size_um=0.33, rgb=True)


@pytest.mark.slow
def test_the_segmentation_is_kept_in_the_project(pipeline_run):
    import zarr

    result, project = pipeline_run
    from napari_cellstate.core.project import Project

    stored = zarr.open_array(str(Project.open(project).segmentation_path), mode="r")
    assert stored.shape == (60, 512, 512)
    assert int(stored[10].max()) == int(np.asarray(result.labels[10]).max())
    assert not list(project.glob(".staging*"))


def test_a_failed_run_leaves_nothing_half_written(tmp_path):
    rng = np.random.default_rng(0)
    noise = (100 + rng.normal(0, 2, (5, 64, 64))).astype(np.uint16)
    with pytest.raises(NoCellsFoundError):
        track_and_crop(noise, pixel_size_um=0.33, crops=CropConfig(), project=tmp_path / "p")
    assert not (tmp_path / "p").exists()  # the project this run created is removed with it
    existing = tmp_path / "existing"
    Project.create(existing)
    with pytest.raises(NoCellsFoundError):
        track_and_crop(noise, pixel_size_um=0.33, crops=CropConfig(), project=existing)
    assert sorted(p.name for p in existing.iterdir()) == [".lock", "project.json"]  # an empty lock: nobody holds it
    assert (existing / ".lock").read_text() == ""
