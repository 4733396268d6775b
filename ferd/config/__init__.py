"""Configuration as data: `make_config(profile, preset, overrides)` builds and validates a `Config` once.

`sections` holds the dataclasses, the per-method field groups and the key; `profiles` the profiles, presets and
the miniature's departures; `build` the one precedence (defaults < profile < per-dataset < preset < overrides)
and every check. This layer imports only `ferd.toolkit` (model and attack names for validation) and
`ferd.errors`.
"""
from ferd.config.build import (
                               CHOICES,
                               FIELD_TYPES,
                               config_from_dict,
                               describe_fields,
                               get_field,
                               make_config,
                               resolve_device,
                               resolve_key,
                               validate,
)
from ferd.config.profiles import ABLATION_PRESETS, BASELINE_PRESETS, PAPER_DATASETS, PRESETS, PROFILES
from ferd.config.sections import (
                               ATTACK_READS,
                               DATASETS,
                               DISTILL_GROUPS,
                               FIELD_GROUP,
                               KEYED_WHEN_ON,
                               METHODS,
                               PROFILES_ALLOWED,
                               AttackConfig,
                               Config,
                               DistillConfig,
                               TeacherConfig,
                               keyed_distill,
                               scoped_attack,
)

__all__ = ["CHOICES", "FIELD_TYPES", "config_from_dict", "describe_fields", "get_field", "make_config", "resolve_device",
           "resolve_key", "validate", "ABLATION_PRESETS", "BASELINE_PRESETS", "PAPER_DATASETS", "PRESETS",
           "PROFILES", "ATTACK_READS", "DATASETS", "DISTILL_GROUPS", "FIELD_GROUP", "KEYED_WHEN_ON", "METHODS",
           "PROFILES_ALLOWED", "AttackConfig", "Config", "DistillConfig", "TeacherConfig", "keyed_distill",
           "scoped_attack"]
