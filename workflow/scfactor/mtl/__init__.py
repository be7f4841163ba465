"""Trace-norm multi-task learning of RNA velocity from TF expression and TF activity (the trace-norm MTL
notebook, MTLRank).

`layout` reads and writes the notebook's file layout (`tables`: its text files, without pandas);
`velocity` derives one from spliced/unspliced counts; `simulate` plants shared low-rank structure in one;
`baseline` holds the per-gene lasso, gene selection and balanced gene clusters; `data` builds one (tissue,
cluster, replicate) shard; `model` trains ONE batched TensorFlow model per shard (`model_np`: the same in
numpy; `training`: what both share); `shard` is the shard step's logic (imports no pandas), `pipeline` the
other steps', `plots` the figures, `smk` what the rules need, `cli` the scripts.
"""
