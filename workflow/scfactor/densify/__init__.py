"""NeuMF densification (the NeuMF/LIGER notebook): train GMF / MLP / NeuMF on one batch's counts with a
seeded share of the nonzeros held out, predict the dense matrix (``layers['neumf']``), score the hidden
entries against zero and truncated-SVD baselines.

Modules: `model` (NeuMF in TensorFlow), `pairs` (streamed training batches), `train` (training loop,
checkpoints, dense prediction), `heldout` (masking and metrics), `spill` (the training matrix on disk), `rsvd`
(the SVD baseline's streamed randomized SVD), `stream` (the output written block by block), `fanout` (the
prediction fan-out's files), `pipeline` (the steps' logic), `plots`, `smk` (what the rules need), `cli` (the
scripts' step functions).
"""
