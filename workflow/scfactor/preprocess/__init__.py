"""Preprocessing: read counts, split batches, QC, normalise, flag LIGER / highly variable genes.

Every analysis reads its output through `scfactor.preprocess.contract`.
"""
