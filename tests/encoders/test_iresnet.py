"""IResNet: insightface key layout, truncation shapes, forward against a functional reference,
loading insightface-style files, and errors naming the keys that do not fit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from decouple.encoders import CheckpointError, ImageSpecError, IResNet, iresnet50, save_weights

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def reference_keys(layers: tuple[int, ...] = (3, 4, 14, 3)) -> list[tuple[str, tuple[int, ...]]]:
    """insightface arcface_torch iresnet key names and shapes, written out from the paper's
    architecture (widths 64/128/256/512, first block of each layer strided with a 1x1
    downsample, head bn2 -> fc(512*7*7 -> 512) -> BatchNorm1d), in module-definition order."""

    def bn(prefix: str, c: int) -> list[tuple[str, tuple[int, ...]]]:
        return [(f"{prefix}.{n}", () if n == "num_batches_tracked" else (c,)) for n in BN]

    keys: list[tuple[str, tuple[int, ...]]] = [("conv1.weight", (64, 3, 3, 3))]
    keys += bn("bn1", 64) + [("prelu.weight", (64,))]
    inplanes = 64
    for li, (n_blocks, planes) in enumerate(zip(layers, (64, 128, 256, 512), strict=True)):
        for bi in range(n_blocks):
            p = f"layer{li + 1}.{bi}"
            c_in = inplanes if bi == 0 else planes
            keys += bn(f"{p}.bn1", c_in)
            keys += [(f"{p}.conv1.weight", (planes, c_in, 3, 3))]
            keys += bn(f"{p}.bn2", planes)
            keys += [(f"{p}.prelu.weight", (planes,))]
            keys += [(f"{p}.conv2.weight", (planes, planes, 3, 3))]
            keys += bn(f"{p}.bn3", planes)
            if bi == 0:
                keys += [(f"{p}.downsample.0.weight", (planes, c_in, 1, 1))]
                keys += bn(f"{p}.downsample.1", planes)
        inplanes = planes
    keys += bn("bn2", 512)
    keys += [("fc.weight", (512, 512 * 7 * 7)), ("fc.bias", (512,))]
    keys += bn("features", 512)
    return keys


def fake_insightface_state(layers: tuple[int, ...], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in reference_keys(layers):
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(1000)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=g) + 0.5
        else:
            state[name] = torch.randn(shape, generator=g) * 0.05
    return state


def test_iresnet50_key_layout_matches_insightface() -> None:
    ref = reference_keys()
    # layer block counts of IResNet-50 and the total number of entries
    assert sum(1 for k, _ in ref if k.endswith(".conv1.weight") and k.startswith("layer")) == 24
    net = iresnet50(stop_at="embedding")
    got = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    assert got == ref
    assert [len(getattr(net, f"layer{i}")) for i in range(1, 5)] == [3, 4, 14, 3]
    assert not net.features.weight.requires_grad  # fixed at 1, as insightface


@pytest.mark.parametrize(
    ("stop_at", "shape"),
    [("layer1", (64, 56, 56)), ("layer2", (128, 28, 28)), ("layer3", (256, 14, 14)),
     ("layer4", (512, 7, 7)), ("embedding", (512,))],
)  # fmt: skip
def test_truncation_shapes(stop_at: str, shape: tuple[int, ...]) -> None:
    net = IResNet((1, 1, 1, 1), stop_at=stop_at).eval()
    out = net(torch.randint(0, 256, (2, 3, 112, 112), dtype=torch.uint8))
    assert tuple(out.shape) == (2, *shape) == (2, *net.output_shape())
    assert out.dtype == torch.float32
    n_layers = 4 if stop_at == "embedding" else int(stop_at[-1])
    built = {k.split(".")[0] for k in net.state_dict()}
    assert {f"layer{i}" for i in range(1, n_layers + 1)} <= built
    assert not {f"layer{i}" for i in range(n_layers + 1, 5)} & built
    assert ("fc" in built) == (stop_at == "embedding")


def test_truncated_without_resize_keeps_size() -> None:
    net = IResNet((1, 1, 1, 1), stop_at="layer3", size=None).eval()
    assert tuple(net(torch.rand(1, 3, 224, 224)).shape) == (1, 256, 28, 28)  # CDRL's 224 crop
    with pytest.raises(ValueError, match="size=\\(112, 112\\)"):
        IResNet((1, 1, 1, 1), stop_at="embedding", size=None)


def _bn(x: torch.Tensor, s: dict[str, torch.Tensor], p: str) -> torch.Tensor:
    return F.batch_norm(x, s[f"{p}.running_mean"], s[f"{p}.running_var"], s[f"{p}.weight"],
                        s[f"{p}.bias"], training=False, eps=1e-5)  # fmt: skip


def functional_iresnet(x: torch.Tensor, s: dict[str, torch.Tensor], layers: tuple[int, ...],
                       upto: int) -> torch.Tensor:  # fmt: skip
    """The insightface forward written with torch.nn.functional from a state dict."""
    x = F.conv2d(x, s["conv1.weight"], padding=1)
    x = F.prelu(_bn(x, s, "bn1"), s["prelu.weight"])
    for li in range(upto):
        for bi in range(layers[li]):
            p = f"layer{li + 1}.{bi}"
            stride = 2 if bi == 0 else 1
            out = F.conv2d(_bn(x, s, f"{p}.bn1"), s[f"{p}.conv1.weight"], padding=1)
            out = F.prelu(_bn(out, s, f"{p}.bn2"), s[f"{p}.prelu.weight"])
            out = _bn(F.conv2d(out, s[f"{p}.conv2.weight"], stride=stride, padding=1), s,
                      f"{p}.bn3")  # fmt: skip
            if bi == 0:
                idt = _bn(F.conv2d(x, s[f"{p}.downsample.0.weight"], stride=2), s,
                          f"{p}.downsample.1")  # fmt: skip
            else:
                idt = x
            x = out + idt
    if upto < 4:
        return x
    x = torch.flatten(_bn(x, s, "bn2"), 1)
    x = F.linear(x, s["fc.weight"], s["fc.bias"])
    return _bn(x, s, "features")


@pytest.mark.parametrize("stop_at", ["layer3", "embedding"])
def test_forward_matches_functional_reference(stop_at: str) -> None:
    layers = (2, 1, 2, 1)
    state = fake_insightface_state(layers)
    net = IResNet(layers, stop_at=stop_at).load_insightface(state).eval().double()
    frames = torch.randint(0, 256, (2, 3, 112, 112), dtype=torch.uint8)
    x = (frames.double() / 255 - 0.5) / 0.5  # insightface's preprocessing
    s = {k: v.double() if v.is_floating_point() else v for k, v in state.items()}
    ref = functional_iresnet(x, s, layers, 4 if stop_at == "embedding" else 3)
    out = net(frames.double() / 255)  # float input in [0, 1] is the same image
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(net(frames).double(), ref, rtol=1e-4, atol=1e-4)


def test_input_is_resized_to_112() -> None:
    net = IResNet((1, 1, 1, 1), stop_at="layer2").eval()
    frames = torch.rand(1, 3, 224, 224)
    resized = F.interpolate(frames, size=(112, 112), mode="bilinear", align_corners=False,
                            antialias=True)  # fmt: skip
    torch.testing.assert_close(net(frames), net(resized))


def test_load_insightface_file_full_and_truncated(tmp_path: Path) -> None:
    state = fake_insightface_state((3, 4, 14, 3))
    path = tmp_path / "backbone.pth"
    torch.save(state, path)
    cut = iresnet50(path, stop_at="layer3")
    assert not cut.training
    assert torch.equal(cut.layer3[13].conv2.weight, state["layer3.13.conv2.weight"])
    assert cut.ignored_prefixes == ("layer4.", "bn2.", "dropout.", "fc.", "features.")
    full = iresnet50(path, stop_at="embedding")
    assert torch.equal(full.fc.weight, state["fc.weight"])
    emb = full.embed(torch.rand(2, 3, 112, 112), normalize=True)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    with pytest.raises(RuntimeError, match="stop_at='embedding'"):
        cut.embed(torch.rand(1, 3, 112, 112))


def test_safetensors_and_old_checkpoint_without_num_batches_tracked(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = fake_insightface_state((1, 1, 1, 1))
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    save_file(state, str(tmp_path / "w.safetensors"))
    net = IResNet((1, 1, 1, 1), stop_at="embedding").load_insightface(tmp_path / "w.safetensors")
    assert torch.equal(net.bn2.running_var, state["bn2.running_var"])


def test_mismatched_checkpoints_name_the_keys(tmp_path: Path) -> None:
    state = fake_insightface_state((1, 1, 1, 1))
    net = IResNet((1, 1, 1, 1), stop_at="layer3")
    missing = {k: v for k, v in state.items() if k != "layer2.0.conv1.weight"}
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): layer2\.0\.conv1\.weight"):
        net.load_insightface(missing)
    extra = dict(state, **{"head.weight": torch.zeros(3)})
    with pytest.raises(CheckpointError, match=r"unexpected keys \(1\): head\.weight"):
        net.load_insightface(extra)
    wrong = dict(state, **{"conv1.weight": torch.zeros(64, 3, 5, 5)})
    path = tmp_path / "wrong.pth"
    torch.save(wrong, path)
    with pytest.raises(CheckpointError, match=r"wrong\.pth .*conv1\.weight: file \(64, 3, 5, 5\)"):
        net.load_insightface(path)
    # the layer4 keys of the file are ignored only because the net is cut after layer3
    deeper = IResNet((1, 1, 1, 1), stop_at="layer4")
    with pytest.raises(CheckpointError, match="missing keys"):
        deeper.load_insightface({k: v for k, v in state.items() if not k.startswith("layer4")})
    # an IResNet-100 file does not fit an IResNet-50
    with pytest.raises(CheckpointError, match=r"unexpected keys \(.*layer2\.4\.bn1"):
        iresnet50(stop_at="layer3").load_insightface(fake_insightface_state((3, 13, 30, 3)))


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    torch.save(torch.nn.Linear(2, 2), path)  # a pickled module, not a state dict
    with pytest.raises(CheckpointError, match="weights_only=True"):
        IResNet((1, 1, 1, 1)).load_insightface(path)
    with pytest.raises(FileNotFoundError, match=r"nothing\.pth"):
        IResNet((1, 1, 1, 1)).load_insightface(tmp_path / "nothing.pth")


def test_save_load_round_trip(tmp_path: Path) -> None:
    net = IResNet((1, 1, 1, 1), stop_at="layer3").eval()
    with torch.no_grad():
        net.bn1.running_mean.uniform_()
    path = save_weights(net, tmp_path / "cut.pt")
    assert set(torch.load(path, weights_only=True)) == set(net.state_dict())
    other = IResNet((1, 1, 1, 1), stop_at="layer3").load_insightface(path).eval()
    x = torch.rand(2, 3, 112, 112)
    assert torch.equal(net(x), other(x))


@pytest.mark.parametrize(
    ("frames", "match"),
    [(torch.rand(2, 112, 112, 3), "channels-last"), (torch.rand(2, 1, 112, 112), "1 channels"),
     (torch.rand(2, 3, 112, 112) * 255, "divide by 255"),
     (torch.rand(2, 3, 112, 112) * 2 - 1, "already normalised"),
     (torch.zeros(2, 3, 112, 112, dtype=torch.int64), "torch.uint8")],
)  # fmt: skip
def test_input_checks(frames: torch.Tensor, match: str) -> None:
    with pytest.raises(ImageSpecError, match=f"IResNet: frames.*{match}"):
        IResNet((1, 1, 1, 1), stop_at="layer1")(frames)
