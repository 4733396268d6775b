"""Registry-wide model properties (timm `tests/test_models.py` style): every registered name is tested with
no new test code. Spec §4.2 and §10.1: `head(features(x)) == forward(x)` within 1e-5."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ferd.errors import ConfigError
from ferd.toolkit.models import (
    InputNormalization,
    count_parameters,
    create_model,
    get_entry,
    list_models,
    register_model,
)

# Paper WRNs are slow on CPU: batch 1 for the family; WRN-34-20's backward pass (184M parameters) is opt-in.
BATCH_ONE_FAMILIES = {"wideresnet"}
SLOW_BACKWARD = {"wrn-34-20"}


def _inputs(name: str) -> torch.Tensor:
    entry = get_entry(name)
    batch = 1 if entry.family in BATCH_ONE_FAMILIES else 2
    return torch.rand(batch, *entry.input_size, generator=torch.Generator().manual_seed(0))


def _check_forward(name: str, model: nn.Module, x: torch.Tensor) -> None:
    """Shape, finiteness and the features/head identity in eval mode."""
    entry = get_entry(name)
    model.eval()
    with torch.no_grad():
        z = model.features(x)
        logits = model(x)
        recomposed = model.head(z)
    assert logits.shape == (x.shape[0], entry.default_num_classes)
    assert z.dim() == 4 and z.shape[2] >= 2 and z.shape[3] >= 2, f"{name}: Z {tuple(z.shape)}"
    assert torch.isfinite(logits).all() and torch.isfinite(z).all()
    torch.testing.assert_close(recomposed, logits, atol=1e-5, rtol=0)


def _contract_params():
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_BACKWARD else n for n in list_models()]


@pytest.mark.parametrize("name", _contract_params())
def test_model_contract(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name)
    x = _inputs(name)
    _check_forward(name, model, x)

    model.train()
    logits = model(x)
    weights = torch.randn(logits.shape, generator=torch.Generator().manual_seed(1))
    (logits * weights).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient reaches {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient in {pname}"
        assert p.grad.abs().sum() > 0, f"{name}: zero gradient in {pname}"


@pytest.mark.parametrize("name", sorted(SLOW_BACKWARD & set(list_models())))
def test_slow_model_forward(name: str) -> None:
    """The forward half of the contract for models whose backward test is opt-in."""
    torch.manual_seed(0)
    _check_forward(name, create_model(name), _inputs(name))


@pytest.mark.parametrize("name", list_models())
def test_entry_metadata(name: str) -> None:
    entry = get_entry(name)
    assert entry.name == name and entry.family and entry.paper_role and entry.split
    assert len(entry.input_size) == 3 and entry.default_num_classes >= 2
    assert entry.checkpoint_key_adapter is None or callable(entry.checkpoint_key_adapter)


def test_paper_split_shapes() -> None:
    """Spec §4.2 table (WRN-34-20 only differs in width and is covered by its forward test)."""
    cases = {"wrn-34-10": (1, 3, 32, 32, (640, 8, 8)), "preactresnet34": (1, 3, 64, 64, (256, 16, 16)),
             "fmnist-cnn": (2, 1, 28, 28, (128, 7, 7))}
    for name, (b, c, h, w, z_shape) in cases.items():
        model = create_model(name).eval()
        with torch.no_grad():
            assert model.features(torch.rand(b, c, h, w)).shape == (b, *z_shape), name


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(ConfigError, match="fmnist-cnn") as info:
        create_model("wrn-28-10")
    assert "wrn-28-10" in str(info.value) and "resnet18" in str(info.value)


def test_bad_arguments_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="widht"):
        create_model("fmnist-cnn", widht=2.0)
    with pytest.raises(ConfigError, match="num_classes"):
        create_model("fmnist-cnn", num_classes=1)
    with pytest.raises(ConfigError, match="fmnist-cnn"):
        register_model("fmnist-cnn", family="small", input_size=(1, 28, 28), default_num_classes=10,
                       paper_role="duplicate", split="none")(lambda num_classes=10: None)


def test_fmnist_parameter_counts() -> None:
    """Spec §8: teacher ~94k with BatchNorm2d; students 25k-80k; width 0.5 is the spec's ~24k student."""
    teacher = create_model("fmnist-cnn")
    assert 90_000 <= count_parameters(teacher) <= 100_000
    assert any(isinstance(m, nn.BatchNorm2d) for m in teacher.modules())
    assert 20_000 <= count_parameters(create_model("fmnist-cnn", width=0.5)) <= 28_000
    for name in ("fmnist-resnet", "fmnist-mobilenet"):
        assert 25_000 <= count_parameters(create_model(name)) <= 80_000, name


@pytest.mark.parametrize("name", ["fmnist-cnn", "fmnist-resnet", "fmnist-mobilenet", "preactresnet18"])
def test_other_channels_sizes_and_classes(name: str) -> None:
    """Small models and PreAct nets take any channel count / size; num_classes overrides the default."""
    model = create_model(name, num_classes=7, in_channels=3).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 7)


def test_wrn_checkpoint_key_adapter() -> None:
    """A TRADES-style state dict (DataParallel prefix, unused sub_block1) loads strictly after adapting."""
    model = create_model("wrn-34-10")
    state = {f"module.{k}": v.clone() for k, v in model.state_dict().items()}
    state["module.sub_block1.layer.0.conv1.weight"] = torch.zeros(160, 16, 3, 3)
    with pytest.raises(RuntimeError):
        model.load_state_dict(state)
    model.load_state_dict(get_entry("wrn-34-10").checkpoint_key_adapter(state), strict=True)


def test_prefix_adapter_for_preact() -> None:
    model = create_model("preactresnet18")
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    model.load_state_dict(get_entry("preactresnet18").checkpoint_key_adapter(state), strict=True)


def test_input_normalization_is_a_non_persistent_buffer() -> None:
    norm = InputNormalization((0.5,), (0.25,))
    assert norm.state_dict() == {}
    x = torch.rand(2, 1, 4, 4)
    torch.testing.assert_close(norm(x), (x - 0.5) / 0.25)
    with pytest.raises(ConfigError):
        InputNormalization((0.5, 0.5), (0.25,))
