"""Where rows come from: local JSON, JSON Lines or Parquet files, a Hugging Face hub dataset, or a builtin.

The rows of every example format (SFT, preference, prompt-only) are read here alike; `splits` validates them.

Rows are read through the `datasets` library, with one exception: JSON Lines, which we parse ourselves, line by
line. The `datasets` JSON loader reports a malformed line as an Arrow parse error without the file or line, so a
user with one bad line in a million could not find it; our reader turns it into an error naming the file and the
1-based line, which `on_bad_row="skip"` can also skip. Local files are read one at a time so that every row knows
its file and its 1-based row number, which validation errors quote.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import json
import os
from collections.abc import Iterator
from typing import Any

import datasets

from alignjax.data.builtin import get_builtin
from alignjax.data.errors import INVALID_JSON, DataError

# Extensions each file source reads; JSON Lines (possibly gzipped) go through our own line reader.
_EXTENSIONS = {"json": (".json", ".json.gz", ".jsonl", ".jsonl.gz"), "parquet": (".parquet",)}
_JSON_LINES = (".jsonl", ".jsonl.gz")


@dataclasses.dataclass(frozen=True)
class SourceRow:
    """One row as read, before validation.

    Attributes:
        where: where it came from, for error messages: "data.jsonl line 3", "data.parquet row 3",
            "dataset org/name split train row 3", "builtin toy_instructions split train row 3".
        value: the decoded row (normally a dict), or the DataError of a line that could not be decoded.
    """

    where: str
    value: Any


def read_rows(source: str, path: str, split: str) -> Iterator[SourceRow]:
    """Yields the rows of one split of a data source, in a fixed order.

    Args:
        source: "builtin", "json", "parquet" or "hf".
        path: builtin name; a file, a directory or a glob pattern of files; or a hub dataset id (or anything else
            `datasets.load_dataset` takes, such as a local dataset directory).
        split: the split to read (hub and builtin datasets; files have a single split and ignore it).

    Yields:
        SourceRow, one per row; errors about the whole source (no such file, unknown builtin, unreadable file)
        are raised as DataError when the iterator is first advanced.
    """
    if source == "builtin":
        dataset = get_builtin(path)
        if split not in dataset.splits:
            raise DataError(f"data.split={split!r}: builtin dataset {path!r} has splits {list(dataset.splits)}")
        for number, row in enumerate(dataset.rows(split), start=1):
            yield SourceRow(f"builtin {path} split {split} row {number}", row)
    elif source == "hf":
        yield from _rows_of(_load_hub(path, split), f"dataset {path} split {split}")
    elif source in _EXTENSIONS:
        for file in _resolve_files(path, source):
            if file.endswith(_JSON_LINES):
                yield from _read_json_lines(file)
            else:
                yield from _rows_of(_load_file(source, file), file)
    else:
        raise DataError(f"data.source={source!r} is not a data source; expected builtin, json, parquet or hf")


def _resolve_files(path: str, source: str) -> list[str]:
    """The files `path` names for `source`: itself, the matching files of a directory, or a glob's matches.

    Args:
        path: a file, a directory or a glob pattern (`*`, `?`, `[...]`, `**`).
        source: "json" or "parquet", which decides the accepted extensions.

    Returns:
        Sorted file paths, at least one; a DataError names the path when there are none or one has another
        extension.
    """
    extensions = _EXTENSIONS[source]
    if any(c in path for c in "*?["):
        files = sorted(f for f in glob.glob(path, recursive=True) if os.path.isfile(f))
        if not files:
            raise DataError(f"data.path={path!r}: no file matches this pattern")
    elif os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(extensions))
        if not files:
            raise DataError(f"data.path={path!r}: the directory has no {'/'.join(extensions)} files")
    elif os.path.isfile(path):
        files = [path]
    else:
        raise DataError(f"data.path={path!r}: no such file or directory")
    for file in files:
        if not file.endswith(extensions):
            raise DataError(f"{file}: data.source={source!r} reads {'/'.join(extensions)} files")
    return files


def _read_json_lines(file: str) -> Iterator[SourceRow]:
    """Rows of a JSON Lines file; a line that is not JSON becomes a DataError naming the file and line."""
    opener = gzip.open if file.endswith(".gz") else open
    with opener(file, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{file} line {number}"
            try:
                value = json.loads(line.rstrip("\r\n"))  # so an error's column is on this line
            except json.JSONDecodeError as e:
                value = DataError(f"{where}: not valid JSON ({e.msg} at column {e.colno})", reason=INVALID_JSON)
            yield SourceRow(where, value)


def _load_file(builder: str, file: str) -> datasets.Dataset:
    try:
        return datasets.load_dataset(builder, data_files=file, split="train")
    except Exception as e:  # datasets raises many types here (Arrow, JSON, generation errors); name the file.
        hint = " (write JSON Lines, .jsonl, to get the line of a syntax error)" if builder == "json" else ""
        raise DataError(f"{file}: the datasets {builder!r} loader could not read it{hint}: {e}") from e


def _load_hub(path: str, split: str) -> datasets.Dataset:
    try:
        return datasets.load_dataset(path, split=split)
    except Exception as e:  # network, authentication, unknown dataset or split: all need the user's attention.
        raise DataError(
            f"data.path={path!r}, data.split={split!r}: datasets.load_dataset could not load it ({e}); a hub id "
            "needs network access, and local files can also be read with data.source='json' or 'parquet'"
        ) from e


def _rows_of(dataset: datasets.Dataset, where: str) -> Iterator[SourceRow]:
    for number, row in enumerate(dataset, start=1):
        yield SourceRow(f"{where} row {number}", row)
