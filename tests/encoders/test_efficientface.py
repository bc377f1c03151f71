"""EfficientFace: the authors' key layout and parameter count, forward against a functional
re-implementation of their code, checkpoint files in the published format (with and without
the pickled training bookkeeping), files that do not fit, and the input preprocessing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from decouple.checkpoint import CheckpointError
from decouple.encoders.efficientface import (
    AFFECTNET7_EMOTIONS,
    AFFECTNET8_EMOTIONS,
    RAFDB_MEAN,
    RAFDB_STD,
    EfficientFace,
    efficientface,
)
from decouple.encoders.spec import ImageSpecError

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
Keys = list[tuple[str, tuple[int, ...]]]


def bn(prefix: str, c: int) -> Keys:
    return [(f"{prefix}.{n}", () if n == "num_batches_tracked" else (c,)) for n in BN]


def reference_keys(num_classes: int = 7) -> Keys:
    """The state dict of zengqunzhao/EfficientFace's `efficient_face()` (fc replaced by a
    1024 -> num_classes Linear), written out from models/EfficientFace.py and
    models/modulator.py: stages [4, 8, 4], channels [29, 116, 232, 464, 1024], in module
    registration order."""
    keys: Keys = [("conv1.0.weight", (29, 3, 3, 3)), *bn("conv1.1", 29)]
    c_in = 29
    for stage, repeats, c_out in (("stage2", 4, 116), ("stage3", 8, 232), ("stage4", 4, 464)):
        half = c_out // 2
        for u in range(repeats):
            p = f"{stage}.{u}"
            if u == 0:  # stride 2: branch1 = depthwise, BN, pointwise, BN, ReLU
                keys += [(f"{p}.branch1.0.weight", (c_in, 1, 3, 3)), *bn(f"{p}.branch1.1", c_in)]
                keys += [(f"{p}.branch1.2.weight", (half, c_in, 1, 1))]
                keys += bn(f"{p}.branch1.3", half)
            first_in = c_in if u == 0 else half
            keys += [(f"{p}.branch2.0.weight", (half, first_in, 1, 1)), *bn(f"{p}.branch2.1", half)]
            keys += [(f"{p}.branch2.3.weight", (half, 1, 3, 3)), *bn(f"{p}.branch2.4", half)]
            keys += [(f"{p}.branch2.5.weight", (half, half, 1, 1)), *bn(f"{p}.branch2.6", half)]
        c_in = c_out
    for i in range(1, 5):  # LocalFeatureExtractor(29, 116): depthwise convs, groups = 29 / 116
        keys += [(f"local.conv{i}_1.weight", (116, 1, 3, 3)), *bn(f"local.bn{i}_1", 116)]
        keys += [(f"local.conv{i}_2.weight", (116, 1, 3, 3)), *bn(f"local.bn{i}_2", 116)]
    g = "modulator.channel_att.gate_c"  # Channel(116): reduction 16 -> 7
    keys += [(f"{g}.gate_c_fc_0.weight", (7, 116)), (f"{g}.gate_c_fc_0.bias", (7,))]
    keys += bn(f"{g}.gate_c_bn_1", 7)
    keys += [(f"{g}.gate_c_fc_final.weight", (116, 7)), (f"{g}.gate_c_fc_final.bias", (116,))]
    s = "modulator.spatial_att.gate_s"  # Spatial(116): 1x1 reduce, 2 dilated 3x3, 1x1 -> 1
    keys += [(f"{s}.gate_s_conv_reduce0.weight", (7, 116, 1, 1)),
             (f"{s}.gate_s_conv_reduce0.bias", (7,)), *bn(f"{s}.gate_s_bn_reduce0", 7)]  # fmt: skip
    for i in range(2):
        keys += [(f"{s}.gate_s_conv_di_{i}.weight", (7, 7, 3, 3)),
                 (f"{s}.gate_s_conv_di_{i}.bias", (7,))]  # fmt: skip
        keys += bn(f"{s}.gate_s_bn_di_{i}", 7)
    keys += [(f"{s}.gate_s_conv_final.weight", (1, 7, 1, 1)), (f"{s}.gate_s_conv_final.bias", (1,))]
    keys += [("conv5.0.weight", (1024, 464, 1, 1)), *bn("conv5.1", 1024)]
    keys += [("fc.weight", (num_classes, 1024)), ("fc.bias", (num_classes,))]
    return keys


def n_params(keys: Keys) -> int:
    """Parameters (no BN running statistics) of a key list."""
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    return sum(int(np.prod(shape)) for name, shape in keys if not name.endswith(buffers))


def random_state(seed: int = 0, num_classes: int = 7) -> dict[str, torch.Tensor]:
    """A state dict of the reference layout with non-trivial BN statistics."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in reference_keys(num_classes):
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(500)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=g) + 0.5
        elif name.endswith("running_mean"):
            state[name] = torch.randn(shape, generator=g) * 0.1
        elif name.endswith(".bias") or (name.endswith(".weight") and len(shape) == 1):
            state[name] = 1.0 + 0.1 * torch.randn(shape, generator=g) if "weight" in name \
                else 0.1 * torch.randn(shape, generator=g)  # fmt: skip
        else:  # conv / linear weights, fan-in scaled
            fan_in = int(np.prod(shape[1:]))
            state[name] = torch.randn(shape, generator=g) / fan_in**0.5
    return state


# ---------------------------------------------------------------------------------------------
# a functional re-implementation of the authors' forward, written from their code


def _bn(x: torch.Tensor, s: dict[str, torch.Tensor], p: str) -> torch.Tensor:
    return F.batch_norm(x, s[f"{p}.running_mean"], s[f"{p}.running_var"], s[f"{p}.weight"],
                        s[f"{p}.bias"], training=False, eps=1e-5)  # fmt: skip


def _dw(x: torch.Tensor, w: torch.Tensor, stride: int) -> torch.Tensor:
    return F.conv2d(x, w, stride=stride, padding=1, groups=x.shape[1])


def _unit(x: torch.Tensor, s: dict[str, torch.Tensor], p: str, stride: int) -> torch.Tensor:
    def branch2(y: torch.Tensor) -> torch.Tensor:
        y = F.relu(_bn(F.conv2d(y, s[f"{p}.branch2.0.weight"]), s, f"{p}.branch2.1"))
        y = _bn(_dw(y, s[f"{p}.branch2.3.weight"], stride), s, f"{p}.branch2.4")
        return F.relu(_bn(F.conv2d(y, s[f"{p}.branch2.5.weight"]), s, f"{p}.branch2.6"))

    if stride == 1:
        x1, x2 = x.chunk(2, dim=1)
        out = torch.cat((x1, branch2(x2)), dim=1)
    else:
        b1 = _bn(_dw(x, s[f"{p}.branch1.0.weight"], stride), s, f"{p}.branch1.1")
        b1 = F.relu(_bn(F.conv2d(b1, s[f"{p}.branch1.2.weight"]), s, f"{p}.branch1.3"))
        out = torch.cat((b1, branch2(x)), dim=1)
    b, c, h, w = out.shape  # channel_shuffle(out, 2)
    return out.view(b, 2, c // 2, h, w).transpose(1, 2).contiguous().view(b, -1, h, w)


def reference_features(s: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """EfficientFace.forward of the authors' code without fc (the CDRL metrics' variant),
    on a normalised (b, 3, 224, 224) input."""
    x = F.relu(_bn(F.conv2d(x, s["conv1.0.weight"], stride=2, padding=1), s, "conv1.1"))
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    # local branch: patch_11 = [0:28, 0:28], patch_21 = [28:56, 0:28], patch_12, patch_22
    patches = [x[:, :, 0:28, 0:28], x[:, :, 28:56, 0:28], x[:, :, 0:28, 28:56],
               x[:, :, 28:56, 28:56]]  # fmt: skip
    outs = []
    for i, patch in enumerate(patches, start=1):
        o = F.relu(_bn(_dw(patch, s[f"local.conv{i}_1.weight"], 2), s, f"local.bn{i}_1"))
        outs.append(F.relu(_bn(_dw(o, s[f"local.conv{i}_2.weight"], 1), s, f"local.bn{i}_2")))
    local = torch.cat([torch.cat([outs[0], outs[1]], 2), torch.cat([outs[2], outs[3]], 2)], 3)
    y = x
    for u in range(4):
        y = _unit(y, s, f"stage2.{u}", 2 if u == 0 else 1)
    # modulator: sigmoid(channel(y) * spatial(y)) * y
    g, sp = "modulator.channel_att.gate_c", "modulator.spatial_att.gate_s"
    pooled = F.avg_pool2d(y, y.size(2), stride=y.size(2)).flatten(1)
    c = F.linear(pooled, s[f"{g}.gate_c_fc_0.weight"], s[f"{g}.gate_c_fc_0.bias"])
    c = F.relu(_bn(c, s, f"{g}.gate_c_bn_1"))  # BatchNorm1d on (b, 7)
    c = F.linear(c, s[f"{g}.gate_c_fc_final.weight"], s[f"{g}.gate_c_fc_final.bias"])
    c = c.unsqueeze(2).unsqueeze(3).expand_as(y)
    m = F.conv2d(y, s[f"{sp}.gate_s_conv_reduce0.weight"], s[f"{sp}.gate_s_conv_reduce0.bias"])
    m = F.relu(_bn(m, s, f"{sp}.gate_s_bn_reduce0"))
    for i in range(2):
        m = F.conv2d(m, s[f"{sp}.gate_s_conv_di_{i}.weight"], s[f"{sp}.gate_s_conv_di_{i}.bias"],
                     padding=4, dilation=4)  # fmt: skip
        m = F.relu(_bn(m, s, f"{sp}.gate_s_bn_di_{i}"))
    m = F.conv2d(m, s[f"{sp}.gate_s_conv_final.weight"], s[f"{sp}.gate_s_conv_final.bias"])
    y = torch.sigmoid(c * m.expand_as(y)) * y + local
    for stage, repeats in (("stage3", 8), ("stage4", 4)):
        for u in range(repeats):
            y = _unit(y, s, f"{stage}.{u}", 2 if u == 0 else 1)
    y = F.relu(_bn(F.conv2d(y, s["conv5.0.weight"]), s, "conv5.1"))
    return y.mean([2, 3])


def normalise(x01: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(RAFDB_MEAN, dtype=x01.dtype).view(1, 3, 1, 1)
    std = torch.tensor(RAFDB_STD, dtype=x01.dtype).view(1, 3, 1, 1)
    return (x01 - mean) / std


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return random_state(0)


@pytest.fixture(scope="module")
def net(state: dict[str, torch.Tensor]) -> EfficientFace:
    model = EfficientFace().eval()
    model.load_state_dict(state)
    return model


def frames(n: int = 2, h: int = 224, w: int = 224, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=g)


# ---------------------------------------------------------------------------------------------
# architecture


def test_key_layout_matches_the_authors_code() -> None:
    got = [(k, tuple(v.shape)) for k, v in EfficientFace().state_dict().items()]
    assert got == reference_keys()
    assert len(got) == 418
    eight = EfficientFace(AFFECTNET8_EMOTIONS)
    assert tuple(eight.fc.weight.shape) == (8, 1024)


def test_parameter_count() -> None:
    # Counted from the layer list (reference_keys): 1,275,293 parameters with the 7-class fc,
    # which rounds to the 1.28 M the paper reports; 1,268,128 without fc (1024 * 7 + 7).
    ref = reference_keys()
    assert n_params(ref) == 1_275_293
    net = efficientface()
    assert sum(p.numel() for p in net.parameters()) == 1_275_293
    assert sum(p.numel() for n, p in net.named_parameters() if not n.startswith("fc.")) == (
        1_275_293 - 1024 * 7 - 7
    )


def test_forward_matches_functional_reference(net: EfficientFace,
                                              state: dict[str, torch.Tensor]) -> None:  # fmt: skip
    x = frames(3)
    with torch.no_grad():  # the input preprocessing is tested below, on its own
        ref = reference_features({k: v.double() for k, v in state.items()},
                                 net.prepare(x).double())  # fmt: skip
        got = net.features(x)
        logits = net(x)
    assert got.shape == (3, 1024) and logits.shape == (3, 7)
    torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        logits.double(), F.linear(ref, state["fc.weight"].double(), state["fc.bias"].double()),
        rtol=1e-4, atol=1e-4,
    )
    assert float(ref.std()) > 1e-2  # a non-degenerate check (features vary)


def test_stage_shapes(net: EfficientFace) -> None:
    x = net.prepare(frames(1))
    shapes = {}
    hooks = [getattr(net, name).register_forward_hook(
        lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:])))
        for name in ("conv1", "maxpool", "stage2", "local", "modulator", "stage3", "stage4",
                     "conv5")]  # fmt: skip
    with torch.no_grad():
        net._trunk(x)
    for h in hooks:
        h.remove()
    assert shapes == {"conv1": (29, 112, 112), "maxpool": (29, 56, 56),
                      "stage2": (116, 28, 28), "local": (116, 28, 28),
                      "modulator": (116, 28, 28), "stage3": (232, 14, 14),
                      "stage4": (464, 7, 7), "conv5": (1024, 7, 7)}  # fmt: skip


def test_emotion_names() -> None:
    from decouple.data.registry import canonical_emotion

    # The authors' README: 0 Neutral, 1 Happiness, 2 Sadness, 3 Surprise, 4 Fear, 5 Disgust,
    # 6 Anger (AffectNet's ids); AffectNet-8 adds 7 Contempt.
    authors = ("Neutral", "Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger")
    assert AFFECTNET7_EMOTIONS == tuple(canonical_emotion(n) for n in authors)
    assert AFFECTNET8_EMOTIONS == (*AFFECTNET7_EMOTIONS, "contempt")
    assert EfficientFace().emotion_names == AFFECTNET7_EMOTIONS
    with pytest.raises(ValueError, match="unique"):
        EfficientFace(("happy", "happy"))


def test_gradients_reach_float_inputs(net: EfficientFace) -> None:
    x = (frames(2).float() / 255).requires_grad_()
    net.features(x).pow(2).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


# ---------------------------------------------------------------------------------------------
# checkpoint files


def save_authors_format(path: Path, model: EfficientFace, **extra: object) -> Path:
    """What the authors' training script writes: {"epoch", "state_dict" from DataParallel,
    "best_acc", "optimizer", ...}."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    for p in model.parameters():
        opt.state[p]["momentum_buffer"] = torch.zeros_like(p)
    dp_state = {"module." + k: v for k, v in model.state_dict().items()}  # DataParallel's names
    torch.save({"epoch": 31, "state_dict": dp_state, "best_acc": torch.tensor([63.70]),
                "optimizer": opt.state_dict(), **extra}, path)  # fmt: skip
    return path


def test_checkpoint_file_reproduces_the_source(tmp_path: Path, net: EfficientFace) -> None:
    path = save_authors_format(tmp_path / "EfficientFace_Trained_on_AffectNet7.pth.tar", net)
    loaded = efficientface(path)
    assert not loaded.training
    x = frames(2, 160, 128)
    with torch.no_grad():
        assert torch.equal(loaded.features(x), net.features(x))
        assert torch.equal(loaded(x), net(x))


class RecorderMeter:
    """Like the authors' main.RecorderMeter: learning curves as numpy arrays."""

    def __init__(self, total_epoch: int) -> None:
        self.total_epoch = total_epoch
        self.current_epoch = 31
        self.epoch_losses = np.zeros((total_epoch, 2), dtype=np.float32)
        self.epoch_accuracy = np.full((total_epoch, 2), 0.5, dtype=np.float32)


def test_checkpoint_with_pickled_recorder_loads_safely(
    tmp_path: Path, net: EfficientFace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pickle the recorder as the training script does (a class of its __main__ module).
    monkeypatch.setattr(RecorderMeter, "__module__", "__main__")
    monkeypatch.setattr(sys.modules["__main__"], "RecorderMeter", RecorderMeter, raising=False)
    path = save_authors_format(tmp_path / "ef.pth.tar", net, recorder=RecorderMeter(40),
                               best_acc_np=np.float64(63.7))  # fmt: skip
    monkeypatch.undo()
    with pytest.raises(Exception, match="RecorderMeter"):  # plain weights_only loading refuses it
        torch.load(path, weights_only=True)
    loaded = efficientface(path)
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_checkpoint_with_other_code_is_refused(tmp_path: Path, net: EfficientFace) -> None:
    path = tmp_path / "evil.pth.tar"
    torch.save({"state_dict": net.state_dict(), "hook": Path("x")}, path)  # a pathlib object
    with pytest.raises(CheckpointError, match="weights_only"):
        efficientface(path)


def test_wrong_files_are_rejected_with_named_keys(tmp_path: Path, net: EfficientFace) -> None:
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("local.conv4_2")}
    state["head.weight"] = torch.zeros(2)
    state["conv5.0.weight"] = torch.zeros(512, 464, 1, 1)
    torch.save({"state_dict": state}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        efficientface(tmp_path / "bad.pth")
    msg = str(err.value)
    assert str(tmp_path / "bad.pth") in msg
    assert "missing keys (1): local.conv4_2.weight" in msg
    assert "unexpected keys (1): head.weight" in msg
    assert "conv5.0.weight: file (512, 464, 1, 1) vs model (1024, 464, 1, 1)" in msg


def test_pretraining_and_eight_class_files_get_a_hint(tmp_path: Path, net: EfficientFace) -> None:
    msceleb = dict(net.state_dict())
    msceleb["fc.weight"], msceleb["fc.bias"] = torch.zeros(12666, 1024), torch.zeros(12666)
    torch.save({"state_dict": msceleb}, tmp_path / "Pretrained_EfficientFace.tar")
    with pytest.raises(CheckpointError, match="MS-Celeb-1M pre-training file"):
        efficientface(tmp_path / "Pretrained_EfficientFace.tar")
    eight = EfficientFace(AFFECTNET8_EMOTIONS)
    torch.save({"state_dict": eight.state_dict()}, tmp_path / "affectnet8.pth.tar")
    with pytest.raises(CheckpointError, match="AFFECTNET8_EMOTIONS"):
        efficientface(tmp_path / "affectnet8.pth.tar")
    loaded = efficientface(tmp_path / "affectnet8.pth.tar", emotion_names=AFFECTNET8_EMOTIONS)
    assert torch.equal(loaded.fc.weight, eight.fc.weight)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothere\.pth\.tar"):
        efficientface(tmp_path / "nothere.pth.tar")


# ---------------------------------------------------------------------------------------------
# preprocessing


def test_uint8_and_float_inputs_give_the_same_features(net: EfficientFace) -> None:
    x = frames(2, 200, 180)
    with torch.no_grad():
        torch.testing.assert_close(net.features(x), net.features(x.float() / 255),
                                   rtol=1e-5, atol=1e-5)  # fmt: skip


def test_centre_crop_of_a_256_side_input_is_a_slice(net: EfficientFace) -> None:
    # shorter side already 256: no resize; CenterCrop(224) keeps rows 38..261 of 300
    # (round(76 / 2) = 38) and columns 16..239
    x = frames(1, 300, 256)
    got = net.prepare(x)
    ref = normalise(x.float() / 255)[..., 38:262, 16:240]
    torch.testing.assert_close(got, ref)


def test_resize_then_crop_matches_torchvision(net: EfficientFace) -> None:
    tv = pytest.importorskip("torchvision.transforms.v2.functional")
    x = frames(2, 150, 120)  # shorter side 120 -> 256, longer int(256 * 150 / 120) = 320
    ref = tv.center_crop(tv.resize(x.float() / 255, [256], antialias=True), [224, 224])
    torch.testing.assert_close(net.prepare(x), normalise(ref), rtol=1e-5, atol=1e-5)
    plain = EfficientFace(resize=None)
    ref = tv.resize(x.float() / 255, [224, 224], antialias=True)
    torch.testing.assert_close(plain.prepare(x), normalise(ref), rtol=1e-5, atol=1e-5)


def test_close_to_the_protocols_pil_pipeline(net: EfficientFace) -> None:
    """The group's script: PIL image -> Resize(256) -> CenterCrop(224) -> ToTensor ->
    Normalize. PIL resizes in uint8; ours stays in float: within about one grey level."""
    image_mod = pytest.importorskip("PIL.Image")
    tvt = pytest.importorskip("torchvision.transforms")
    g = torch.Generator().manual_seed(3)
    smooth = F.interpolate(torch.rand(1, 3, 12, 10, generator=g), size=(180, 150),
                           mode="bilinear", align_corners=False)  # a smooth image, not noise
    x = (smooth * 255).round().to(torch.uint8)
    pil = image_mod.fromarray(x[0].permute(1, 2, 0).numpy())
    pipeline = tvt.Compose([tvt.Resize(256), tvt.CenterCrop(224), tvt.ToTensor(),
                            tvt.Normalize(mean=list(RAFDB_MEAN), std=list(RAFDB_STD))])  # fmt: skip
    images = [(x, pil)]
    mpl = pytest.importorskip("matplotlib")
    photo = Path(mpl.get_data_path()) / "sample_data" / "grace_hopper.jpg"  # 512 x 600, real
    if photo.is_file():
        pil = image_mod.open(photo).convert("RGB")
        images.append((torch.from_numpy(np.array(pil)).permute(2, 0, 1)[None], pil))
    for x, pil in images:
        ref = pipeline(pil)[None]
        diff = (net.prepare(x) - ref) * torch.tensor(RAFDB_STD).view(1, 3, 1, 1) * 255
        assert float(diff.abs().max()) <= 1.0 + 1e-3  # at most one grey level (PIL rounds)
        assert float(diff.abs().mean()) < 0.4


def test_bad_inputs_are_named() -> None:
    net = EfficientFace()
    with pytest.raises(ImageSpecError, match="EfficientFace"):
        net.features(torch.zeros(1, 224, 224, 3))
    with pytest.raises(ImageSpecError, match="divide by 255"):
        net.features(torch.full((1, 3, 224, 224), 128.0))
    with pytest.raises(ValueError, match="resize"):
        EfficientFace(resize=200)
