"""Multilayer NMF (the multilayer NMF notebook): X ~ theta1 theta2 ... beta in PyTorch, its block simulator
and figures (docs/layers.md).
"""
