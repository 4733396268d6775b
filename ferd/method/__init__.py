"""The method: data-free robustness distillation with FERD's three parts, its ablations and baselines.

The generator and its losses, FAE, the robustness probe and class reweighting, UTAE, the synthetic pool, one
generation round, the one training loop (`distill.Distiller`), the methods registry (`methods`) and the
robust teachers they distil from. A method module imports `ferd.config`, `ferd.toolkit` and `ferd.errors`,
never the book machinery above it (tests/test_layers.py).
"""
