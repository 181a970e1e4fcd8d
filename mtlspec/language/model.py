"""The `model` section: backbone, neck and how the network is shared between tasks."""

from typing import Annotated, Literal, Union

from pydantic import Field

from mtlspec.language.base import PositiveFloat, Section


class BackboneInit(Section):
    """Weights the backbone starts from, read from a local file before training (nothing is downloaded)."""

    checkpoint: str
    """A torchvision ResNet state dict (`torch.save(model.state_dict())`), an MMDetection or
    MMPretrain checkpoint (its `backbone.` part), or an mtlspec run: its directory, model.pt or a
    checkpoint (its shared trunk). Relative to the spec file; read weights-only."""


class Pretrainable(Section):
    """What every backbone offers: a start from a local checkpoint, and parts kept fixed."""

    init: BackboneInit | None = None
    frozen_stages: Annotated[int, Field(ge=-1, le=6)] = -1
    """As in MMDetection: -1 trains everything; 0 freezes the stem; k the stem and the first k
    stages (no gradient, normalisation statistics fixed)."""
    norm_eval: bool = False
    """Keep every BatchNorm layer's statistics fixed while training (as for a pretrained backbone
    fine-tuned on small batches)."""


class ResNet(Pretrainable):
    """MMDetection's ResNet, with a configurable depth and base width."""

    type: Literal["ResNet"]
    depth: Literal[18, 34, 50, 101, 152] = 18
    base_channels: Annotated[int, Field(ge=4, le=256)] = 64
    num_stages: Annotated[int, Field(ge=1, le=4)] = 4


class ResNeXt(Pretrainable):
    """MMDetection's ResNeXt (Xie et al., CVPR 2017): bottlenecks of `groups` grouped convolutions
    of `base_width` channels each."""

    type: Literal["ResNeXt"]
    depth: Literal[50, 101, 152] = 50
    groups: Annotated[int, Field(ge=1, le=128)] = 32
    base_width: Annotated[int, Field(ge=1, le=128)] = 4
    num_stages: Annotated[int, Field(ge=1, le=4)] = 4


class RegNet(Pretrainable):
    """MMDetection's RegNetX (Radosavovic et al., CVPR 2020), by its named design; the compiler
    reads the channels of each stage from the built network."""

    type: Literal["RegNet"]
    arch: Literal["regnetx_400mf", "regnetx_800mf", "regnetx_1.6gf", "regnetx_3.2gf", "regnetx_4.0gf",
                  "regnetx_6.4gf", "regnetx_8.0gf", "regnetx_12gf"] = "regnetx_400mf"


class SmallCNN(Pretrainable):
    """A small built-in CNN for fast CPU runs: one stride-2 stage per entry of `channels`."""

    type: Literal["SmallCNN"]
    channels: Annotated[list[Annotated[int, Field(ge=1, le=1024)]], Field(min_length=1, max_length=6)] = [16, 32, 64]


FourInts = Annotated[list[Annotated[int, Field(ge=1, le=64)]], Field(min_length=4, max_length=4)]


class PVT(Pretrainable):
    """MMDetection's Pyramid Vision Transformer, four stages of transformer layers with
    spatial-reduction attention: `PVT` (Wang et al., ICCV 2021: patch embeddings without overlap,
    absolute position embeddings resized to the input) or `PVTv2` (Wang et al., CVM 2022:
    overlapping patch embeddings, convolutional feed-forward layers, no position embeddings). Each
    stage embeds its own patches (strides 4, 8, 16, 32), so the stem is empty. The defaults are
    MMDetection's PVTv2-b0 (pvt-v2-b0_fpn)."""

    type: Literal["PVT", "PVTv2"]
    embed_dims: Annotated[int, Field(ge=4, le=256)] = 32
    """Channels per attention head: stage i is `embed_dims` x `num_heads[i]` wide."""
    num_layers: FourInts = [2, 2, 2, 2]
    """Transformer layers in each stage."""
    num_heads: FourInts = [1, 2, 5, 8]
    mlp_ratios: FourInts = [8, 8, 4, 4]
    """Width of each stage's feed-forward layers, in multiples of the stage's width."""
    sr_ratios: FourInts = [8, 4, 2, 1]
    """Spatial reduction of keys and values in each stage's attention."""
    drop_path_rate: Annotated[float, Field(ge=0, lt=1)] = 0.1
    """Stochastic depth, rising linearly over the layers to this rate."""


class Swin(Pretrainable):
    """MMDetection's Swin Transformer (Liu et al., ICCV 2021): 4 x 4 patches, then four stages of
    shifted-window attention blocks with patch merging between them (strides 4, 8, 16, 32) and a
    LayerNorm on each stage's output before the neck. The defaults are Swin-T's
    (mask-rcnn_swin-t-p4-w7_fpn). Image-level heads pool the last stage before its output norm."""

    type: Literal["Swin"]
    embed_dims: Annotated[int, Field(ge=4, le=512)] = 96
    """Width of the first stage; each later stage doubles it."""
    depths: FourInts = [2, 2, 6, 2]
    """Blocks in each stage."""
    num_heads: FourInts = [3, 6, 12, 24]
    window_size: Annotated[int, Field(ge=1, le=32)] = 7
    """Side of the attention windows, in patches (feature maps are padded to a multiple)."""
    drop_path_rate: Annotated[float, Field(ge=0, lt=1)] = 0.2
    """Stochastic depth, rising linearly over the blocks to this rate (Swin-T: 0.2)."""


Backbone = Annotated[Union[ResNet, ResNeXt, RegNet, PVT, Swin, SmallCNN], Field(discriminator="type")]


class FPN(Section):
    type: Literal["FPN"]
    out_channels: Annotated[int, Field(ge=1, le=1024)] = 64


class NoNeck(Section):
    type: Literal["none"]


Neck = Annotated[Union[FPN, NoNeck], Field(discriminator="type")]


class Separate(Section):
    """One full network per task: the single-task baselines."""

    type: Literal["separate"]


class HardSharing(Section):
    """Hard parameter sharing; tasks get their own copies of the stages after `branch_at`."""

    type: Literal["hps"]
    branch_at: Annotated[int, Field(ge=0)] | None = None
    """Backbone stage after which tasks branch; absent means the whole backbone is shared."""


class CrossStitch(Section):
    """Per-task networks mixed by learned linear units after each stage (Misra et al., CVPR 2016)."""

    type: Literal["cross_stitch"]
    init_self: Annotated[float, Field(ge=0, le=1)] = 0.9
    """Initial weight a unit gives its own task's features."""


class MTAN(Section):
    """A shared trunk with per-task soft-attention modules (Liu, Johns, Davison, CVPR 2019)."""

    type: Literal["mtan"]


class MMoE(Section):
    """Shared experts mixed by per-task gates (Ma et al., KDD 2018)."""

    type: Literal["mmoe"]
    num_experts: Annotated[int, Field(ge=1, le=64)] = 4


class CGC(Section):
    """Customized gate control: shared and task-specific experts (Tang et al., RecSys 2020)."""

    type: Literal["cgc"]
    num_shared_experts: Annotated[int, Field(ge=1, le=64)] = 2
    num_task_experts: Annotated[int, Field(ge=1, le=64)] = 1


class PLE(Section):
    """Progressive layered extraction: stacked CGC levels (Tang et al., RecSys 2020)."""

    type: Literal["ple"]
    num_levels: Annotated[int, Field(ge=1, le=8)] = 2
    num_shared_experts: Annotated[int, Field(ge=1, le=64)] = 2
    num_task_experts: Annotated[int, Field(ge=1, le=64)] = 1


class SoftSharing(Section):
    """Per-task networks with an L2 penalty pulling their parameters together."""

    type: Literal["soft"]
    weight: PositiveFloat = 1.0e-3


Sharing = Annotated[
    Union[Separate, HardSharing, CrossStitch, MTAN, MMoE, CGC, PLE, SoftSharing],
    Field(discriminator="type"),
]

# Topologies with one shared representation that every task reads: where
# representation-space gradient methods (weighting.space: representation) can run.
SINGLE_REPRESENTATION = ("hps",)
# Topologies without any shared parameter: gradient-based weighting has nothing to act on.
NO_SHARED_PARAMETERS = ("separate", "soft")


class TextTower(Section):
    """The text tower that tasks reading text share (image_text_retrieval's captions, vqa's
    questions): a word-level tokenizer fitted on the training split's own text (nothing is
    downloaded) and a small encoder trained with the rest of the model. The sharing topology
    applies to the image tower; the text tower is one network, shared by every task that reads
    text (a shared part for the weighting methods when two or more do)."""

    type: Literal["transformer", "gru", "bag"] = "transformer"
    """`transformer`: token and position embeddings, pre-norm self-attention layers, the mean of
    the valid tokens as the text's vector; `gru`: a bidirectional GRU, its last states as the
    vector; `bag`: a bag of words, the mean of the valid tokens' embeddings (order-blind, and what
    generalises best from a few descriptions: Reed et al., CVPR 2016, compare it with the others)."""
    width: Annotated[int, Field(ge=8, le=2048)] = 128
    """Width of the token features (a multiple of `heads` for the transformer)."""
    layers: Annotated[int, Field(ge=1, le=24)] = 2
    heads: Annotated[int, Field(ge=1, le=32)] = 4
    """Attention heads per layer (transformer)."""
    max_length: Annotated[int, Field(ge=4, le=512)] = 32
    """Tokens per text, <bos> and <eos> included; longer texts are cut."""
    min_count: Annotated[int, Field(ge=1)] = 1
    """Training-text words seen fewer times than this become <unk>."""
    vocabulary_size: Annotated[int, Field(ge=8, le=1_000_000)] = 10_000
    lowercase: bool = True
    pretrained: str | None = None
    """A local checkpoint of this tower (a state dict saved from an mtlspec run's `text.` weights, or
    a file holding only the tower's), read weights-only before training; relative to the spec."""


class Fusion(Section):
    """How tasks that read an image and a text together (vqa) combine the two towers."""

    type: Literal["late", "film", "cross_attention"] = "late"
    """`late`: an MLP over the image vector, the text vector and their product; `film` (Perez et
    al., AAAI 2018): the text sets a per-channel scale and shift of residual convolution blocks on
    the image's feature map; `cross_attention`: the text's tokens attend to the feature map's
    positions (transformer decoder layers), then their mean is classified."""
    hidden: Annotated[int, Field(ge=8, le=4096)] = 256
    """Width of the fused representation."""
    layers: Annotated[int, Field(ge=1, le=8)] = 2
    """FiLM blocks, or cross-attention layers (late fusion: hidden layers of the MLP)."""


class TemporalPool(Section):
    """TSN's consensus (Wang et al., ECCV 2016): the backbone on each frame alone, a clip's vector
    the mean of its frames'. Blind to the frames' order: it cannot tell left from right motion."""

    type: Literal["pool"]


class TemporalShift(Section):
    """The temporal shift module (TSM, Lin et al., ICCV 2019): in every residual block, before its
    first convolution, 1/fold_div of the channels move one frame back in time and 1/fold_div one
    frame forward (zeros at the clip's ends); no parameters. Backbones without residual blocks
    (SmallCNN) shift at the input of each stage (the paper's in-place variant)."""

    type: Literal["tsm"]
    fold_div: Annotated[int, Field(ge=2, le=64)] = 8
    """1/fold_div of the channels shifted each way (the paper: 8, a quarter of them moved)."""


class Conv2Plus1D(Section):
    """(2+1)D convolution (R(2+1)D, Tran et al., CVPR 2018) after the backbone: residual blocks of a
    3 x 3 spatial then a 3-frame temporal convolution on the last stage's maps (zero-padded in time)."""

    type: Literal["r2plus1d"]
    blocks: Annotated[int, Field(ge=1, le=4)] = 1
    """Residual (2+1)D blocks appended to the last stage."""


Temporal = Annotated[Union[TemporalPool, TemporalShift, Conv2Plus1D], Field(discriminator="type")]


class Model(Section):
    backbone: Backbone = SmallCNN(type="SmallCNN")
    neck: Neck = FPN(type="FPN")
    sharing: Sharing = HardSharing(type="hps")
    text: TextTower = TextTower()
    """The text tower (used only when a task reads text)."""
    fusion: Fusion = Fusion()
    """How image and text meet in tasks that read both (used only by such tasks)."""
    temporal: Temporal | None = None
    """How the backbone sees time, for clip datasets (required by their tasks): every frame
    through the backbone and topology, with `tsm`'s shifts or `r2plus1d`'s temporal blocks inside
    it; clip tasks read the frames' features pooled over time (and the sequence of them), frame
    tasks each frame's."""
