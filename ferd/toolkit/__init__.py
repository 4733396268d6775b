"""The robustness toolkit: data, models, attacks, per-class evaluation and the artifact store.

Nothing here knows about FERD or about configs: these are the tools any adversarial-robustness study needs,
and the layers above (`ferd.config`, `ferd.method`, `ferd.book`) build on them. Imports go one way:
a toolkit module imports only `ferd.errors` and other toolkit modules (tests/test_layers.py).
"""
