"""Negative-binomial mixture clustering (the model-based clustering notebook): the simulator (`simulate`),
the mixture and its batch EM / amortised fits (`model`), the starts of its restarts (`starts`), the Leiden baseline, scores, figures and summary
(`pipeline`, `plots`), and the scripts' command lines (`cli`, `smk`). See docs/nbmix.md.
"""
