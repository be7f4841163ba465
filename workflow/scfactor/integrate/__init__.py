"""LIGER-style integration (the NeuMF/LIGER notebook): integrative NMF of >= 2 batches in PyTorch (batch or
online), quantile normalisation, Leiden, UMAP and metrics; and simulator (c), batches sharing factors plus
batch-specific factors.

Modules: `model` (iNMF), `quantile_norm`, `pipeline` (batch loading, scaling, fit, assemble, score,
online mode), `plots`, `simulate`, `smk` (rule command lines), `cli` (the steps integrate,
integrate_figures and simulate_batches).
"""
