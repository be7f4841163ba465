"""The count matrix inside a Cell Ranger output folder (`scfactor.core.cellranger.matrix_source`): the folder named,
its ``outs``, ``multi`` and version-2 layouts, the ``.h5`` beside them, and the one-line errors."""

from __future__ import annotations

import pytest

from scfactor.core.cellranger import matrix_source
from scfactor.core.errors import InputError


def _matrix(folder, name="matrix.mtx.gz"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"")
    return folder


@pytest.mark.parametrize("sub", ["", "filtered_feature_bc_matrix", "outs/filtered_feature_bc_matrix",
                                 "count/sample_filtered_feature_bc_matrix",
                                 "outs/per_sample_outs/s1/count/sample_filtered_feature_bc_matrix",
                                 "filtered_gene_bc_matrices/hg19", "outs/filtered_gene_bc_matrices/GRCh38"])
def test_the_filtered_matrix_is_found(tmp_path, sub):
    want = _matrix(tmp_path / "run" / sub, "matrix.mtx" if "gene_bc" in sub else "matrix.mtx.gz")
    _matrix(tmp_path / "run" / "outs" / "raw_feature_bc_matrix")  # never taken for the user
    assert matrix_source(tmp_path / "run") == want


def test_the_folders_come_before_the_h5(tmp_path):
    run = tmp_path / "run"
    (run / "outs").mkdir(parents=True)
    (run / "outs" / "filtered_feature_bc_matrix.h5").write_bytes(b"")
    assert matrix_source(run) == run / "outs" / "filtered_feature_bc_matrix.h5"
    with pytest.raises(InputError, match="no matrix.mtx"):
        matrix_source(run, h5=False)
    folder = _matrix(run / "outs" / "filtered_feature_bc_matrix")
    assert matrix_source(run) == folder


def test_no_matrix_or_several_genomes_fail_in_one_line(tmp_path):
    _matrix(tmp_path / "run" / "outs" / "raw_feature_bc_matrix")
    with pytest.raises(InputError) as raw:
        matrix_source(tmp_path / "run")
    assert str(tmp_path / "run") in str(raw.value) and "raw_feature_bc_matrix" in str(raw.value)
    assert "\n" not in str(raw.value)
    for genome in ("hg19", "mm10"):
        _matrix(tmp_path / "v2" / "filtered_gene_bc_matrices" / genome, "matrix.mtx")
    with pytest.raises(InputError, match=r"one matrix per genome \(hg19, mm10\)"):
        matrix_source(tmp_path / "v2")


def test_a_multi_run_of_several_samples_asks_for_one(tmp_path):
    for sample in ("s1", "s2"):
        _matrix(tmp_path / "run" / "outs" / "per_sample_outs" / sample / "count" / "sample_filtered_feature_bc_matrix")
    with pytest.raises(InputError, match=r"a cellranger multi run of 2 samples \(s1, s2\): name one sample's folder"):
        matrix_source(tmp_path / "run")
    one = tmp_path / "run" / "outs" / "per_sample_outs" / "s2"
    assert matrix_source(one) == one / "count" / "sample_filtered_feature_bc_matrix"
