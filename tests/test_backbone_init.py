"""`model.backbone.init`, `frozen_stages`, `norm_eval` (issue 19).

The reference for the torchvision layout is MMDetection's own ResNet class, built from its
registry outside mtlspec: it names its parameters as torchvision's ResNet does (`conv1`, `bn1`,
`layer1.0.conv1`, ..., so that it loads torchvision's checkpoints), and its forward is the
reference the loaded backbone's features are compared with. (torchvision itself cannot be
installed beside the CPU build of torch here: its registry wheel needs the CUDA build.)"""

from __future__ import annotations

import json

import pytest
import torch

from conftest import run_result
from mtlspec.language import validate_file

pytestmark = pytest.mark.stack

SPEC = """\
name: init
seed: 1
data:
  datasets:
    digits: {{type: multidigits, canvas: 32, objects: {{max: 2}}, splits: {{train: 32, val: 8, test: 8}}}}
  batch_size: 8
  image_size: 32
tasks:
  largest: {{type: classification, dataset: digits, label: largest_digit}}
  seg: {{type: segmentation, dataset: digits}}
model: {{backbone: {backbone}, neck: {{type: FPN, out_channels: 16}}}}
weighting: {{type: {weighting}}}
training: {{epochs: 1, device: cpu, optimizer: {{type: sgd, lr: 0.05}}}}
report: {{formats: [json], plots: false}}
"""


def spec_file(tmp_path, backbone: str, weighting: str = "ew", name: str = "s.yaml"):
    path = tmp_path / name
    path.write_text(SPEC.format(backbone=backbone, weighting=weighting))
    return path


def reference_resnet(seed: int = 0):
    """MMDetection's ResNet-18 from its registry, with random weights and statistics."""
    from mtlspec.openmmlab import build_module

    torch.manual_seed(seed)
    net = build_module(dict(type="ResNet", depth=18, out_indices=(0, 1, 2, 3)))
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5 if "running_var" in name else torch.randn_like(tensor) * 0.1)
    net.eval()  # MMDetection's ResNet.train returns None
    return net


def test_a_torchvision_layout_resnet_gives_the_reference_features(tmp_path):
    from mtlspec.language.root import Spec
    from mtlspec.model.backbones import build_backbone

    net = reference_resnet()
    state = dict(net.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)  # torchvision's classifier
    torch.save(state, tmp_path / "resnet18.pth")
    spec = Spec.model_validate({"name": "x", "data": {"datasets": {"d": {"type": "multidigits"}}},
                                "tasks": {"t": {"type": "depth", "dataset": "d"}},
                                "model": {"backbone": {"type": "ResNet", "depth": 18, "init": {"checkpoint": "resnet18.pth"}}}})
    backbone = build_backbone(spec.model.backbone, tmp_path).eval()
    report = backbone.init_report
    assert report["loaded"] == report["of"] == 120 and report["missing"] == [] and report["unused"] == ["fc.bias", "fc.weight"]
    image = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        for ours, theirs in zip(backbone(image), net(image), strict=True):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0)  # the same modules, the same weights: the same bits


def test_mmdetection_checkpoints_and_mtlspec_runs_start_the_backbone(tmp_path, monkeypatch):
    from mtlspec.build import build

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    net = reference_resnet(seed=5)
    torch.save({"meta": {"epoch": 12, "mmdet_version": "3.3.0"},
                "state_dict": {**{f"backbone.{k}": v for k, v in net.state_dict().items()},
                               "neck.lateral_convs.0.conv.weight": torch.randn(16, 64, 1, 1), "bbox_head.x": torch.randn(3)}},
               tmp_path / "retinanet.pth")
    (first,) = validate_file(spec_file(tmp_path, "{type: ResNet, depth: 18, init: {checkpoint: retinanet.pth}}"), [])
    assert first.errors == [], first.errors
    model = build(first.spec, tmp_path).model
    assert model.topology.init_report["loaded"] == 120 and model.topology.init_report["unused"] == []
    torch.testing.assert_close(model.topology.stem[0].weight, net.conv1.weight, rtol=0, atol=0)
    torch.testing.assert_close(model.topology.trunk[3][1].conv2.weight, net.layer4[1].conv2.weight, rtol=0, atol=0)

    # an mtlspec run (SmallCNN) starts a new spec's backbone: its trunk, by the run directory's name
    (source,) = validate_file(spec_file(tmp_path, "{type: SmallCNN, channels: [8, 16]}", name="source.yaml"), [])
    trained = run_result(source, tmp_path / "runs").run_dir
    relative = trained.relative_to(tmp_path)
    (again,) = validate_file(spec_file(tmp_path, f"{{type: SmallCNN, channels: [8, 16], init: {{checkpoint: {relative}}}}}", name="again.yaml"), [])
    assert again.errors == [], again.errors
    outcome = run_result(again, tmp_path / "runs2")
    manifest = json.loads((outcome.run_dir / "manifest.json").read_text())
    assert manifest["backbone_init"]["loaded"] == manifest["backbone_init"]["of"] > 0
    start = build(again.spec, tmp_path).model.topology
    saved = torch.load(trained / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(v, saved[f"topology.{k}"]) for k, v in start.state_dict().items() if k.startswith(("stem.", "trunk.")))


def test_what_cannot_start_the_backbone_is_refused_before_training(tmp_path, cli):
    torch.save({"head.weight": torch.randn(3, 3)}, tmp_path / "other.pth")
    result = cli("run", str(spec_file(tmp_path, "{type: SmallCNN, channels: [8, 16], init: {checkpoint: other.pth}}")), "--out", str(tmp_path / "r"))
    assert result.exit_code == 1 and "nothing in" in result.output and "model.backbone.init.checkpoint" in result.output
    assert not (tmp_path / "r").exists()  # nothing written

    result = cli("validate", str(spec_file(tmp_path, "{type: SmallCNN, init: {checkpoint: missing.pth}}", name="m.yaml")))
    assert "missing-file" in result.output and "missing.pth" in result.output
    result = cli("run", str(tmp_path / "m.yaml"), "--out", str(tmp_path / "r"))
    assert result.exit_code == 1

    class Payload:
        def __reduce__(self):
            return (print, ("this ran",))

    torch.save({"conv1.weight": Payload()}, tmp_path / "planted.pth")
    result = cli("run", str(spec_file(tmp_path, "{type: SmallCNN, init: {checkpoint: planted.pth}}", name="p.yaml")), "--out", str(tmp_path / "r"))
    assert result.exit_code == 1 and "could run code" in result.output and "this ran" not in result.output

    result = cli("validate", str(spec_file(tmp_path, "{type: SmallCNN, channels: [8, 16], frozen_stages: 3}", name="f.yaml")))
    assert result.exit_code == 1 and "frozen_stages 3 is more than the backbone's 2 stages" in result.output


@pytest.mark.parametrize("weighting", ["ew", "mgda"])
def test_frozen_stages_and_norm_eval_keep_what_they_freeze(weighting, tmp_path, monkeypatch):
    """frozen_stages 1: the stem and stage 1 keep their weights and statistics through training,
    stage 2 learns; norm_eval: no BatchNorm statistic of the backbone moves (gradient methods see
    only the trainable shared parameters)."""
    from mtlspec.train.loop import seeded_build

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    (result,) = validate_file(spec_file(tmp_path, "{type: SmallCNN, channels: [8, 16], frozen_stages: 1, norm_eval: true}", weighting), [])
    assert result.errors == [], result.errors
    before = {k: v.clone() for k, v in seeded_build(result.spec, tmp_path).model.state_dict().items()}
    outcome = run_result(result, tmp_path / "runs")
    after = torch.load(outcome.run_dir / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith(("topology.stem.", "topology.trunk.0.")))
    assert all(torch.equal(after[k], before[k]) for k in before if "running_" in k and k.startswith("topology."))  # the backbone's; heads keep theirs
    assert not torch.equal(after["topology.trunk.1.0.0.weight"], before["topology.trunk.1.0.0.weight"])


@pytest.mark.parametrize("backbone, config", [
    ({"type": "RegNet", "arch": "regnetx_400mf"}, dict(type="RegNet", arch="regnetx_400mf", out_indices=(0, 1, 2, 3))),
    ({"type": "ResNeXt", "depth": 50, "groups": 8, "base_width": 4}, dict(type="ResNeXt", depth=50, groups=8, base_width=4, out_indices=(0, 1, 2, 3))),
    ({"type": "PVT", "embed_dims": 16, "num_layers": [1, 1, 2, 1]},
     dict(type="PyramidVisionTransformer", embed_dims=16, num_layers=[1, 1, 2, 1], out_indices=(0, 1, 2, 3))),
    ({"type": "PVTv2", "embed_dims": 16, "num_layers": [1, 2, 1, 1], "num_heads": [1, 2, 4, 8]},
     dict(type="PyramidVisionTransformerV2", embed_dims=16, num_layers=[1, 2, 1, 1], num_heads=[1, 2, 4, 8], out_indices=(0, 1, 2, 3))),
    ({"type": "Swin", "embed_dims": 16, "depths": [1, 2, 1, 1], "num_heads": [1, 2, 4, 4]},
     dict(type="SwinTransformer", embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 4, 4], out_indices=(0, 1, 2, 3))),
])
def test_registry_backbones_load_mmdetection_checkpoints_and_give_its_features(backbone, config, tmp_path):
    """RegNet has no max-pool after its stem and channels no formula gives; ResNeXt groups its
    convolutions; PVT's stages are transformers on tokens, each embedding its own patches (and
    PVT v1 resizes position embeddings made for 224 px): the staged backbone must still compute
    what MMDetection's class computes, bit for bit (eval mode: no stochastic depth)."""
    from mtlspec.language.root import Spec
    from mtlspec.model.backbones import NormedNeck, build_backbone
    from mtlspec.openmmlab import build_module

    torch.manual_seed(2)
    net = build_module(config)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5 if "running_var" in name else torch.randn_like(tensor) * 0.05)
    net.eval()
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "c.pth")
    spec = Spec.model_validate({"name": "x", "data": {"datasets": {"d": {"type": "multidigits"}}}, "tasks": {"t": {"type": "depth", "dataset": "d"}},
                                "model": {"backbone": {**backbone, "init": {"checkpoint": "c.pth"}}}})
    ours = build_backbone(spec.model.backbone, tmp_path).eval()
    assert ours.init_report["loaded"] == ours.init_report["of"] and ours.init_report["unused"] == []
    image = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = net(image)
        got = ours(image)
        if ours.out_norms is not None:  # Swin's output norms, which the neck applies (off the chain between stages)
            got = NormedNeck(ours.out_norms, torch.nn.Identity())(got)
    assert ours.channels == [int(e.shape[1]) for e in expected] and ours.strides == [4, 8, 16, 32]
    for g, e in zip(got, expected, strict=True):
        # Swin's stages pass token sequences and ours feature maps; moving between the two layouts
        # can change which kernel a matrix product takes, so allow float32 rounding there.
        tolerance = dict(rtol=1e-5, atol=1e-5) if ours.out_norms is not None else dict(rtol=0, atol=0)
        torch.testing.assert_close(g, e, **tolerance)


def test_swin_freezes_what_mmdetection_freezes():
    """MMDetection's Swin freezes, for frozen_stages k, the patch embedding, the first k stages with
    their output norms and the patch merging that ends each; the staged backbone keeps the merging at
    the start of the next stage, and must still freeze exactly the same tensors."""
    from mtlspec.language.model import Swin
    from mtlspec.model.backbones import build_backbone
    from mtlspec.model.init import backbone_names
    from mtlspec.openmmlab import build_module

    for k in (0, 1, 2, 4):
        net = build_module(dict(type="SwinTransformer", embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 4, 4], frozen_stages=k))
        net.train()
        theirs = set(backbone_names({name: torch.zeros(1) for name, p in net.named_parameters() if not p.requires_grad}))
        ours = build_backbone(Swin(type="Swin", embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 4, 4], frozen_stages=k))
        assert {name for name, p in ours.named_parameters() if not p.requires_grad} == theirs and theirs, k
    # and frozen parts stay in eval mode when the model trains: no stochastic depth there, as in MMDetection
    ours = build_backbone(Swin(type="Swin", embed_dims=16, depths=[2, 2, 1, 1], num_heads=[1, 2, 4, 4], drop_path_rate=0.5, frozen_stages=2))
    copy = __import__("copy").deepcopy(ours)  # topologies copy backbones: the copy must keep its frozen parts in eval mode too
    for net in (ours, copy):
        net.train()
        x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            first, second = net(x), net(x)
        assert torch.equal(first[1], second[1]) and not torch.equal(first[3], second[3])
        assert not net.stages[1].training and net.stages[3].training


def test_checkpoints_in_the_original_swin_and_pvt_layouts_are_refused_with_the_converter_named(tmp_path):
    from mtlspec.model.init import InitError, backbone_names

    with pytest.raises(InitError, match="swin2mmdet.py"):
        backbone_names({"patch_embed.proj.weight": torch.zeros(1), "layers.0.blocks.0.norm1.weight": torch.zeros(1)})
    with pytest.raises(InitError, match="pvt2mmdet.py"):
        backbone_names({"patch_embed1.proj.weight": torch.zeros(1), "block1.0.norm1.weight": torch.zeros(1)})


@pytest.mark.parametrize("backbone", [
    "{type: PVTv2, embed_dims: 8, num_layers: [1, 1, 1, 1], num_heads: [1, 1, 2, 2]}",
    "{type: Swin, embed_dims: 8, depths: [1, 1, 1, 1], num_heads: [1, 1, 2, 2], window_size: 4}",
])
def test_transformer_backbones_run_and_export_or_say_why_not(backbone, tmp_path, monkeypatch, cli):
    """`run` builds the model on the meta device before anything is written (MMDetection's
    transformers read numbers from tensors while they are built); PVT exports exactly, Swin's
    export is refused with the reason."""
    from conftest import run_result, tiny_spec

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    text = tiny_spec("tb", "digit: {type: classification, dataset: digits, label: largest_digit}\nboxes: {type: detection, dataset: digits, "
                     "head: {type: FCOSHead, stacked_convs: 1, feat_channels: 32}}",
                     "training: {epochs: 1, device: cpu}\nreport: {formats: [json], plots: false}\n")
    text = text.replace("backbone: {type: SmallCNN, channels: [8, 16]}", f"backbone: {backbone}")
    (tmp_path / "tb.yaml").write_text(text)
    deep = cli("validate", "--deep", str(tmp_path / "tb.yaml"))
    assert deep.exit_code == 0, deep.output
    (result,) = validate_file(tmp_path / "tb.yaml", [])
    run_dir = run_result(result, tmp_path / "runs").run_dir
    exported = cli("export", str(run_dir))
    if "Swin" in backbone:
        assert exported.exit_code == 2 and "window_reverse" in exported.output
    else:
        assert exported.exit_code == 0, exported.output
