"""Model zoo: a registry of every architecture FERD uses, each with `features(x)` / `head(z)` (spec §4).

Importing this package registers all families.
"""
# Family modules: imported for their registrations.
from ferd.toolkit.models import mobilenetv2, preactresnet, resnet, small, wideresnet  # noqa: E402,F401
from ferd.toolkit.models.registry import (
    FerdModel,
    InputNormalization,
    ModelEntry,
    count_parameters,
    create_model,
    get_entry,
    list_models,
    register_model,
    strip_prefix,
)

__all__ = [
    # registry
    "create_model", "list_models", "get_entry", "register_model", "ModelEntry",
    # model interface and helpers
    "FerdModel", "InputNormalization", "count_parameters", "strip_prefix",
]
