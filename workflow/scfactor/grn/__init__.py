"""Prior-masked gene regulatory networks between cell states (the cell-state GRN notebook), in PyTorch.

One run per entry of ``grn.transitions`` (A -> B): cells of A paired with cells of B, targets in B
regressed on TFs in A with weights only on prior TF -> target edges (`model`: masked linear, masked MLP;
`inputs`: priors, cell states, pairing; `pipeline`: the steps; `plots`; `smk`; `cli`).
"""
