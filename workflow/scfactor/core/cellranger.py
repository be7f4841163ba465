"""The count matrix inside a Cell Ranger output folder.

Users point at the folder they have: the matrix folder itself (``matrix.mtx.gz``, ``barcodes.tsv.gz``,
``features.tsv.gz``), or the run folder / its ``outs`` above it. `matrix_source` finds the filtered matrix there,
as Cell Ranger lays it out (``count``: ``outs/filtered_feature_bc_matrix`` and ``.h5``; ``multi``:
``outs/per_sample_outs/<sample>/count/sample_filtered_feature_bc_matrix``; version 2:
``filtered_gene_bc_matrices/<genome>``), and says which it took.
The unfiltered ``raw_feature_bc_matrix`` (every barcode, mostly empty droplets) is never taken for the user.
"""

from __future__ import annotations

from pathlib import Path

from .errors import InputError
from .log import LOG

#: matrix folders below a folder a user names, in the order they are looked for
FILTERED_FOLDERS = ("filtered_feature_bc_matrix", "outs/filtered_feature_bc_matrix",
                    "sample_filtered_feature_bc_matrix", "count/sample_filtered_feature_bc_matrix")
#: a ``cellranger multi`` run's folder of per-sample outputs (one sub-folder per sample)
MULTI_SAMPLES = "outs/per_sample_outs"
#: Cell Ranger 2's filtered matrices, one folder per genome
FILTERED_V2 = ("filtered_gene_bc_matrices", "outs/filtered_gene_bc_matrices")


def is_matrix_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a Matrix Market count matrix (``matrix.mtx`` or ``matrix.mtx.gz``)."""
    return (folder / "matrix.mtx").is_file() or (folder / "matrix.mtx.gz").is_file()


def matrix_source(folder, h5: bool = True) -> Path:
    """The matrix folder (or, with ``h5``, Cell Ranger ``.h5`` file) that ``folder`` names: itself when it holds
    ``matrix.mtx(.gz)``, else the filtered matrix of the Cell Ranger output below it (logged). `InputError` naming
    what was looked for when there is none, or when a version-2 folder holds several genomes."""
    folder = Path(folder)
    if is_matrix_folder(folder):
        return folder
    samples = sorted(d for d in (folder / MULTI_SAMPLES).glob("*") if d.is_dir())
    if len(samples) == 1:
        folder = samples[0]
    elif samples:
        raise InputError(folder, f"a cellranger multi run of {len(samples)} samples "
                                 f"({', '.join(d.name for d in samples[:6])}): name one sample's folder, "
                                 f"{MULTI_SAMPLES}/<sample>, per row of a sample sheet")
    found = [folder / sub for sub in FILTERED_FOLDERS if is_matrix_folder(folder / sub)]
    for sub in FILTERED_V2:
        genomes = sorted(d for d in (folder / sub).glob("*") if is_matrix_folder(d))
        if len(genomes) > 1:
            raise InputError(folder, f"{sub} holds one matrix per genome ({', '.join(d.name for d in genomes)}): "
                                     "name the genome's folder")
        found += genomes
    if h5:
        found += [folder / f"{sub}.h5" for sub in FILTERED_FOLDERS if (folder / f"{sub}.h5").is_file()]
    if not found:
        raw = " (there is an unfiltered raw_feature_bc_matrix, every barcode: name it to use it)" if any(
            (folder / sub).exists() for sub in ("raw_feature_bc_matrix", "outs/raw_feature_bc_matrix")) else ""
        raise InputError(folder, "no matrix.mtx(.gz) in this folder, nor a Cell Ranger filtered matrix below it "
                                 f"({', '.join(FILTERED_FOLDERS[:2])}, {FILTERED_V2[0]}/<genome>){raw}")
    LOG.info("%s: a Cell Ranger output folder; reading its filtered matrix %s", folder, found[0])
    return found[0]
