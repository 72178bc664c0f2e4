import pandas as pd
import pytest

from napari_cellstate.core.labelling import LabelsFileError, LabelStore
from napari_cellstate.core.objects import validate_objects


@pytest.fixture
def objects(small_sample):
    return validate_objects(small_sample.objects.assign(object_id=range(1, len(small_sample.objects) + 1)))


def test_labels_survive_closing_and_reopening(tmp_path, objects):
    store = LabelStore(tmp_path / "labels.csv")
    store.assign(objects.iloc[:3], "metaphase")
    store.assign(objects.iloc[3:5], "interphase")
    reopened = LabelStore(tmp_path / "labels.csv")
    assert reopened.counts() == {"interphase": 2, "metaphase": 3}
    assert reopened.labels_for(objects.iloc[:6]).tolist() == ["metaphase"] * 3 + ["interphase"] * 2 + [""]


def test_propagate_along_a_track_in_a_frame_range(tmp_path, objects):
    store = LabelStore(tmp_path / "labels.csv")
    track = objects["track_id"].value_counts().index[0]
    changed = store.propagate(objects, track, "interphase", 2, 6)
    assert changed == 5
    labelled = objects[store.labels_for(objects) == "interphase"]
    assert set(labelled["track_id"]) == {track}
    assert labelled["t"].tolist() == [2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="has no cells between frames"):
        store.propagate(objects, track, "interphase", 500, 600)


def test_undo_and_relabel(tmp_path, objects):
    store = LabelStore(tmp_path / "labels.csv")
    store.assign(objects.iloc[:2], "metaphase")
    store.assign(objects.iloc[:1], "interphase")
    assert store.counts() == {"interphase": 1, "metaphase": 1}
    assert store.undo()
    assert LabelStore(tmp_path / "labels.csv").counts() == {"metaphase": 2}
    store.assign(objects.iloc[:2], "")
    assert store.counts() == {}
    assert store.undo()
    assert store.undo()
    assert not store.undo()


def test_export_then_import_onto_a_new_run_matches_by_position(tmp_path, objects):
    store = LabelStore(tmp_path / "labels.csv")
    store.assign(objects.iloc[10:20], "metaphase")
    exported = store.export_csv(tmp_path / "out.csv")
    rerun = objects.assign(object_id=objects["object_id"] + 1000, y=objects["y"] + 1.0)
    other = LabelStore(tmp_path / "other.csv")
    assert other.import_csv(exported, rerun) == 10
    assert (other.labels_for(rerun).iloc[10:20] == "metaphase").all()


def test_import_ground_truth_from_the_simulator(tmp_path, small_sample, objects):
    store = LabelStore(tmp_path / "labels.csv")
    store.import_ground_truth(small_sample.objects, objects)
    truth = small_sample.objects["state"].astype(str).value_counts().to_dict()
    assert store.counts() == truth


def test_a_foreign_csv_is_refused(tmp_path, objects):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"a": [1]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="lacks columns"):
        LabelStore(path)


HEADER = "object_id,track_id,t,y,x,label\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            HEADER + "1,1,0,5,6,metaphase\n2,1,1,5,6,metaph",
            r"last line has no line break, so the file may have been cut",
        ),
        (HEADER + "1,1,0,5,6,metaphase\n2,1,1,5\n", r"refused, not used in part: line 3 misses a field"),
        (HEADER + "1,1,0,5,6,metaphase\n1,1,0,5,6,interphase\n", r"1 cell\(s\) have conflicting labels \(lines 2, 3 "),
        (
            "t,y,x,label\n0,5,6, metaphase\n",
            r"unrecognised class ' metaphase' \(did you mean 'metaphase'\?\) on line 2",
        ),
        ("t,y,x,label\n0,5,6,Metaphase\n", r"unrecognised class 'Metaphase' \(did you mean 'metaphase'\?\)"),
        ("t,y,x,label\n0,5,6,metaphse\n", r"'metaphse' \(did you mean 'metaphase'\?\)"),
        ("t,y,x,label\n0,5,6,G1/S\n", r"'G1/S' \(class names are letters, digits, spaces, - and _\)"),
        ("t,y,x,label\n0.5,5,6,metaphase\n1,nan,3,interphase\n", r"lines 2, 3 hold a malformed number"),
    ],
)
def test_a_damaged_or_ambiguous_labels_csv_is_refused_whole(tmp_path, text, message):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(LabelsFileError, match=message):
        LabelStore(path)
    assert path.read_text() == text  # nothing rewritten


def test_repeated_rows_blank_lines_and_custom_classes_are_fine(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("t,y,x,label\n0,5,6,metaphase\n\n0,5,6,metaphase\n1,5,6,mitotic cell\n")
    assert LabelStore(path).counts() == {"metaphase": 1, "mitotic cell": 1}
