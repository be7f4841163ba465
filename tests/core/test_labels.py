"""`scfactor.core.metrics.label_vector` / `label_strings`: the labels every scoring step uses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scfactor.core.metrics import label_strings, label_vector

OBS = pd.DataFrame({"code": [1, 2, np.nan, 3], "name": pd.Categorical(["x", "unlabelled", None, "y"]),
                    "none": [np.nan] * 4})


def test_label_strings_integer_codes_and_missing_values():
    assert label_strings(OBS["code"]).tolist() == ["1", "2", None, "3"]  # 1.0 (float column) -> '1'
    assert label_strings(OBS["name"]).tolist() == ["x", None, None, "y"]
    assert label_strings([0, 1.5, "a", True]).tolist() == ["0", "1.5", "a", "True"]


@pytest.mark.parametrize("key, keep, mask, warning", [
    ("code", (), [1, 1, 0, 1], None),
    ("code", ("1", 2), [1, 1, 0, 0], None),                      # text and integers select the same labels
    ("code", (1, 9), [1, 0, 0, 0], "labels_keep value(s) 9 label no cell of obs['code']; scoring 1 of 4 cells"),
    ("code", (9,), [0, 0, 0, 0], "no cell scored (0 of 4 cells): no label of obs['code'] is among labels_keep"),
    ("label", (), [0, 0, 0, 0], "no cell scored (0 of 4 cells): there is no obs column 'label'"),
    ("none", (), [0, 0, 0, 0], "no cell scored (0 of 4 cells): obs['none'] labels no cell"),
    ("name", ("x",), [1, 0, 0, 0], None),
])
def test_label_vector(key, keep, mask, warning):
    labels, got, text = label_vector(OBS, key, keep)
    assert got.tolist() == [bool(m) for m in mask] and len(labels) == 4
    if warning is None:
        assert text is None
    else:
        assert text.startswith(warning) and "\n" not in text
        assert ("metrics are NaN" in text) == (not any(mask))
