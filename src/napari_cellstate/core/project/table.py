"""The objects table, stored apart from the crops: a base table and column groups, each a Parquet file.

``objects.parquet`` holds the columns a run wrote (one row per crop, in crop
order). Columns added later (latents, predictions, attack results) are
*groups*, each its own file ``columns/<group>.parquet`` with its provenance
(which command and which model, by content hash, made it) in the file's
metadata, so adding or replacing a group writes only that group and never
touches the crops. Files carry Parquet page checksums, verified on read.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from ..io import atomic_path
from .folder import ProjectError, now

__all__ = ["OBJECTS_FILE", "read_objects", "write_column_group", "write_table"]

OBJECTS_FILE = "objects.parquet"
COLUMNS_DIR = "columns"
_METADATA_KEY = b"napari_cellstate"
_GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def write_table(path: Path, table: pd.DataFrame, metadata: dict) -> None:
    """Write ``table`` with ``metadata`` as one Parquet file, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for name in table.columns:
        if not isinstance(name, str) or not name:
            raise ValueError(f"Column {name!r} cannot be stored: column names must be non-empty text.")
    try:
        arrow = pa.Table.from_pandas(table.reset_index(drop=True), preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise ValueError(
            f"The table cannot be stored ({err}): use numbers, booleans, text or categories "
            "(convert other columns, e.g. with .astype(str))."
        ) from err
    schema_metadata = {**(arrow.schema.metadata or {}), _METADATA_KEY: json.dumps(metadata, default=str).encode()}
    # floats: byte-stream split (no dictionary) compresses latents to ~7 of 8 bytes; dictionaries for the rest
    floats = [f.name for f in arrow.schema if pa.types.is_floating(f.type)]
    others = [f.name for f in arrow.schema if f.name not in floats]
    with atomic_path(path) as tmp:
        pq.write_table(
            arrow.replace_schema_metadata(schema_metadata),
            tmp,
            compression="zstd",
            use_dictionary=others or False,
            use_byte_stream_split=floats or False,
            write_page_checksum=True,
        )


def read_table(path: Path) -> tuple[pd.DataFrame, dict]:
    """Read a table written by :func:`write_table`; refuse a damaged one."""
    import pyarrow.parquet as pq

    try:
        arrow = pq.read_table(path, page_checksum_verification=True)
        metadata = json.loads((arrow.schema.metadata or {}).get(_METADATA_KEY, b"{}"))
        table = arrow.to_pandas()
    except FileNotFoundError as err:
        raise ProjectError(
            f"{path} is missing: the project folder is incomplete. Run Track & crop again "
            "(napari-cellstate track ... --replace), or restore the project from a backup."
        ) from err
    except Exception as err:  # pyarrow's errors for bad magic bytes, truncation, checksums, schema
        raise ProjectError(
            f"{path} is damaged and cannot be read ({type(err).__name__}: {err}). Run the step that wrote it "
            "again, or restore the project from a backup."
        ) from err
    if metadata.get("n_rows", len(table)) != len(table):
        raise ProjectError(f"{path} is damaged: it records {metadata['n_rows']} rows but holds {len(table)}.")
    return table, metadata


def read_objects(run_path: Path) -> tuple[pd.DataFrame, dict[str, dict]]:
    """The run's objects table with every column group joined, and each group's provenance."""
    table, _ = read_table(run_path / OBJECTS_FILE)
    provenance: dict[str, dict] = {}
    folder = run_path / COLUMNS_DIR
    for file in sorted(folder.glob("*.parquet")) if folder.is_dir() else ():
        group, info = read_table(file)
        if len(group) != len(table):
            raise ProjectError(
                f"{file} has {len(group)} rows but the objects table has {len(table)}: it belongs to another run. "
                f"Delete it and run the step that made it ({info.get('command', 'unknown')}) again."
            )
        table = pd.concat([table, group.set_index(table.index)], axis=1)
        provenance[file.stem] = info
    return table, provenance


def write_column_group(
    run_path: Path, group: str, columns: pd.DataFrame, n_rows: int, existing: list[str], provenance: dict
) -> dict:
    """Add or replace the column group ``group`` of a run; returns the provenance recorded with it.

    Parameters
    ----------
    columns : DataFrame
        One row per crop, in crop order.
    existing : list of str
        Columns that other groups and the base table already hold (a name lives in one place).
    provenance : dict
        What made these columns: ``command`` and, where a model did, ``model`` (name and content hash).
    """
    if not _GROUP_NAME.match(group):
        raise ValueError(f"Column group name {group!r} must be letters, digits, '_' or '-' (at most 64).")
    if len(columns) != n_rows:
        raise ValueError(f"{len(columns)} rows given for a dataset of {n_rows} crops.")
    clash = sorted(set(columns.columns) & set(existing))
    if clash:
        raise ValueError(
            f"Columns {clash} already belong to the objects table or another column group; give them other names."
        )
    record = {
        **provenance,
        "group": group,
        "columns": list(map(str, columns.columns)),
        "n_rows": n_rows,
        "created": now(),
    }
    write_table(run_path / COLUMNS_DIR / f"{group}.parquet", columns, record)
    return record
