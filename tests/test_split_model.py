"""The split itself: halves compose to the whole network, costs add up, weights load safely."""

from __future__ import annotations

import pickle

import pytest
import torch

from functions.split import VARIANTS, costs, load_resnet50, split, untrained_resnet50
from functions.split.model import UNTRAINED, top_k
from functions.split.weights import WeightsError, save_state_dict

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def model():
    return untrained_resnet50()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_halves_compose_to_the_unsplit_network(model, variant):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    a, b = split(model, variant)
    with torch.inference_mode():
        whole = model(x)
        middle = a(x)
        composed = b(middle)
    assert torch.equal(composed, whole)
    # the cut really is where the variant says: deeper cuts have more channels, smaller maps
    channels = {"a-light": 256, "balanced": 512, "a-heavy": 1024}[variant]
    assert middle.shape == (2, channels, 64 // (4 * channels // 256), 64 // (4 * channels // 256))


def test_variants_move_the_work_between_halves():
    shares = {}
    for variant in VARIANTS:
        cost = costs(variant)
        total = cost["a"].flops + cost["b"].flops
        assert total == pytest.approx(8.18e9, rel=0.01)  # ResNet-50: 4.09 GMACs at 224x224
        assert cost["a"].params + cost["b"].params == 25_557_032
        shares[variant] = cost["a"].flops / total
    assert shares["a-light"] < 0.3 < shares["balanced"] < 0.6 < shares["a-heavy"]


def test_untrained_init_is_the_same_in_every_process(model):
    again = untrained_resnet50()
    assert all(
        torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters(), strict=True)
    )
    assert load_resnet50(None)[1] == UNTRAINED


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_weights_load_from_both_formats(tmp_path, suffix):
    torch.manual_seed(7)
    from torchvision.models import resnet50

    trained = resnet50(weights=None).eval()
    path = save_state_dict(trained, tmp_path / f"resnet50{suffix}")
    loaded, label = load_resnet50(str(path))
    assert label == str(path)
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(loaded(x), trained(x))


def test_pickled_objects_and_wrong_files_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"conv1.weight": Evil()}))
    with pytest.raises(WeightsError, match="not a plain torch state dict"):
        load_resnet50(str(evil))
    other = tmp_path / "other.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(WeightsError, match="not a ResNet-50 state dict"):
        load_resnet50(str(other))
    with pytest.raises(WeightsError, match="does not exist"):
        load_resnet50(str(tmp_path / "missing.safetensors"))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 16)
    with pytest.raises(WeightsError, match="safetensors"):
        load_resnet50(str(broken))


def test_top5_names_imagenet_classes():
    logits = torch.zeros(1, 1000)
    logits[0, 207] = 10.0  # golden retriever
    best = top_k(logits)[0]
    assert len(best) == 5 and best[0]["index"] == 207 and best[0]["label"] == "golden retriever"
