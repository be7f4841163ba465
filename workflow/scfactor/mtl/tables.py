"""pandas-free reading and writing of the MTL steps' delimited text files (layout CSVs, clusters, shard tables).

The numpy-engine shard process imports neither TensorFlow nor pandas (whose import was the largest fixed
cost left in each of the fan-out's many short shard processes). `read_rows` and `to_float` read what
``pandas.read_csv`` reads from the files these steps write (a header row, ``""`` / ``NA`` / ``nan`` ... as
missing); `write_tsv` writes a table byte for byte as ``DataFrame.to_csv(path, sep="\\t", index=False, float_format="%.6g")`` does.
"""

from __future__ import annotations

import csv
import gzip
import os

import numpy as np

from ..core.errors import InputError
from ..core.io import atomic_output, require_file, table_separator

#: cells read as missing: ``pandas.read_csv``'s default ``na_values``
NA_STRINGS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                        "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


def read_rows(path) -> tuple[list[str], list[list[str]]]:
    """``(header, data rows)`` of a CSV/TSV, as text (gzip allowed; separator from the suffix, as
    `scfactor.core.io.read_table`). Blank lines are skipped and short rows padded with empty cells; a missing
    file, an empty file, bad UTF-8 or a row longer than the header raises `InputError`."""
    p = require_file(path)
    opener = gzip.open if p.name.lower().endswith(".gz") else open
    try:
        with opener(p, "rt", encoding="utf-8-sig", newline="") as f:
            rows = [r for r in csv.reader(f, delimiter=table_separator(p)) if r]
    except (UnicodeDecodeError, OSError, csv.Error) as exc:
        raise InputError(p, f"cannot read table: {str(exc).splitlines()[0]}") from None
    if not rows:
        raise InputError(p, "cannot read table: no columns to parse from file")
    header, body = rows[0], rows[1:]
    for i, row in enumerate(body):
        if len(row) > len(header):
            raise InputError(p, f"cannot read table: row {i + 1} has {len(row)} fields, the header {len(header)}")
        row.extend([""] * (len(header) - len(row)))
    return header, body


def column(header, body, name: str) -> list[str]:
    """The text cells of column ``name`` (the caller has checked it exists)."""
    j = header.index(name)
    return [row[j] for row in body]


def to_float(rows, path, names) -> np.ndarray:
    """float64 matrix of rows of text cells, missing cells (`NA_STRINGS`) NaN; a non-numeric cell raises
    `InputError` naming ``path`` and its column (``names[j]``)."""
    rows = [["nan" if c in NA_STRINGS else c for c in r] for r in rows]
    try:
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
    except ValueError:
        pass
    for r in rows:
        for j, c in enumerate(r):
            try:
                float(c)
            except ValueError:
                raise InputError(path, f"non-numeric value {c!r} in column {names[j]!r}") from None
    raise InputError(path, f"rows do not all have {len(names)} fields")


def _cells(values, float_format: str) -> list[str]:
    """The text of one column's cells as ``DataFrame.to_csv`` writes them (missing: empty)."""
    a = np.asarray(values)
    if a.dtype.kind == "f":
        return ["" if np.isnan(v) else float_format % v for v in a]
    if a.dtype.kind in "iub":
        return [str(v) for v in a.tolist()]
    return ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in a.tolist()]


def write_tsv(path, columns: dict, float_format: str = "%.6g") -> None:
    """Write ``{name: values}`` (equal-length sequences, or scalars repeated) atomically as the bytes of
    ``pandas.DataFrame(columns).to_csv(path, sep="\\t", index=False, float_format=float_format)``."""
    n = max((len(v) for v in columns.values() if np.ndim(v)), default=1)
    cells = [_cells(np.repeat(np.asarray(v), n) if np.ndim(v) == 0 else v, float_format) for v in columns.values()]
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator=os.linesep, quoting=csv.QUOTE_MINIMAL)
        w.writerow(list(columns))
        w.writerows(zip(*cells))
