"""The `tasks` section: one entry per task, each bound to a dataset, tagged by task type."""

import typing
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Field

from mtlspec.language.base import Name, PositiveInt, Section

# MMDetection dense heads the language accepts. The detection adapter fills their
# num_classes, in_channels, strides (and FCOS's regress_ranges, FoveaBox's edges and scale ranges) from the model;
# each has MMDetection's standard settings for it (tasks/dense_head.py HEAD_DEFAULTS).
DENSE_HEADS = (
    "FCOSHead",
    "RetinaHead",
    "ATSSHead",
    "GFLHead",
    "FSAFHead",
    "FoveaHead",
    "PAAHead",
    "AutoAssignHead",
    "FreeAnchorRetinaHead",
)
# Fields of a head that the compiler computes; writing them is an error.
COMPUTED_HEAD_FIELDS = ("num_classes", "in_channels", "strides", "feat_channels_from_neck")


class DenseHead(Section):
    """Any MMDetection dense head by name; other fields pass through to MMDetection as written."""

    model_config = Section.model_config | {"extra": "allow"}
    type: Literal[DENSE_HEADS]  # type: ignore[valid-type]


class TwoStageHead(Section):
    """Faster R-CNN's two stages on the shared pyramid (Ren et al., NeurIPS 2015): MMDetection's RPN
    head proposes boxes, its standard RoI head (RoIAlign, two shared fully connected layers)
    classifies and refines them; the settings are those of MMDetection's faster-rcnn_r50_fpn config."""

    type: Literal["FasterRCNN"]
    proposals: Annotated[int, Field(ge=1, le=10_000)] = 1000
    """Proposals per image the RPN passes to the second stage (MMDetection: 2000 while training,
    1000 at test; here the same number for both)."""
    roi_samples: Annotated[int, Field(ge=1, le=4096)] = 512
    """Proposals per image sampled to train the second stage (a quarter positive at most)."""
    fc_channels: Annotated[int, Field(ge=1, le=4096)] = 1024
    """Width of the second stage's two fully connected layers."""


class MaskRCNNHead(TwoStageHead):
    """Mask R-CNN (He et al., ICCV 2017): Faster R-CNN's two stages plus a mask branch on RoIAlign
    features (14 x 14), convolutions and a 28 x 28 mask per class pasted into each detected box;
    MMDetection's RPN, standard RoI and FCN mask heads with the settings of its mask-rcnn_r50_fpn
    config, the convolutions as wide as the neck."""

    type: Literal["MaskRCNN"]  # type: ignore[assignment]
    mask_convs: Annotated[int, Field(ge=1, le=8)] = 4
    """3 x 3 convolutions of the mask branch before its upsampling (MMDetection: 4)."""


Head = Annotated[Union[DenseHead, TwoStageHead], Field(discriminator="type")]


class TaskBase(Section):
    dataset: Name
    """The dataset (a key of data.datasets) whose samples carry this task's labels."""


class Classification(TaskBase):
    DIRECTIONS: ClassVar = {"accuracy": True, "top_k": True, "macro_f1": True}  # higher is better?
    type: Literal["classification"]
    label: Name
    num_classes: PositiveInt | None = None
    """Number of classes; the dataset's when absent."""
    metrics: list[Literal["accuracy", "top_k", "macro_f1"]] = ["accuracy", "macro_f1"]
    top_k: PositiveInt = 5


class Multilabel(TaskBase):
    DIRECTIONS: ClassVar = {"map": True, "f1": True}
    type: Literal["multilabel"]
    label: Name
    num_labels: PositiveInt | None = None
    metrics: list[Literal["map", "f1"]] = ["map", "f1"]
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5


class Regression(TaskBase):
    DIRECTIONS: ClassVar = {"mae": False, "rmse": False}
    type: Literal["regression"]
    label: Name
    loss: Literal["l1", "l2", "smooth_l1"] = "l1"
    metrics: list[Literal["mae", "rmse"]] = ["mae", "rmse"]


class Detection(TaskBase):
    DIRECTIONS: ClassVar = {"map": True, "map50": True, "map75": True}
    type: Literal["detection"]
    head: Head
    metrics: list[Literal["map", "map50", "map75"]] = ["map", "map50", "map75"]


class Segmentation(TaskBase):
    DIRECTIONS: ClassVar = {"miou": True, "pixel_accuracy": True}
    type: Literal["segmentation"]
    num_classes: PositiveInt | None = None
    """Classes including background; the dataset's when absent."""
    metrics: list[Literal["miou", "pixel_accuracy"]] = ["miou", "pixel_accuracy"]


class InstanceSegmentation(TaskBase):
    """A mask for each object: boxes, classes and per-object masks (COCO mask mAP, as pycocotools'
    `segm` evaluation computes it; box mAP beside it)."""

    DIRECTIONS: ClassVar = {"mask_map": True, "mask_map50": True, "mask_map75": True, "box_map": True}
    type: Literal["instance_segmentation"]
    head: MaskRCNNHead = MaskRCNNHead(type="MaskRCNN")
    metrics: list[Literal["mask_map", "mask_map50", "mask_map75", "box_map"]] = ["mask_map", "mask_map50", "mask_map75", "box_map"]


class Depth(TaskBase):
    DIRECTIONS: ClassVar = {"abs_err": False, "rel_err": False, "delta1": True}
    type: Literal["depth"]
    loss: Literal["l1", "l2", "scale_invariant"] = "l1"
    metrics: list[Literal["abs_err", "rel_err", "delta1"]] = ["abs_err", "rel_err", "delta1"]


class ZeroShot(TaskBase):
    """Classes never seen in training, recognised from their descriptions (attribute-based zero-shot
    learning): the head maps an image into the attribute space of a class x attribute table, and a
    class scores by its compatibility with the image there. The `unseen` classes train nothing;
    they are only described. Scored as Xian et al. (TPAMI 2018) do: per-class top-1 among the unseen
    classes (ZSL), and over all classes (generalized ZSL: u, s and their harmonic mean H), with
    calibrated stacking's seen-unseen curve (Chao et al., ECCV 2016) in the report."""

    DIRECTIONS: ClassVar = {"zsl_top1": True, "gzsl_u": True, "gzsl_s": True, "gzsl_h": True, "ausuc": True}
    type: Literal["zero_shot"]
    label: Name
    """The class label (as a classification task of this dataset would read it)."""
    num_classes: PositiveInt | None = None
    """Number of classes, seen and unseen; the dataset's when absent."""
    attributes: Annotated[str, Field(min_length=1)] | None = None
    """The class x attribute table: a CSV file (header `class,<attribute>,...`, one row per class,
    named as the dataset names its classes; relative to the spec), or `multidigits` for the table
    shipped for the embedded dataset's digits. Required by every method but `text`."""
    descriptions: Annotated[str, Field(min_length=1)] | None = None
    """The classes described in words, for `method: text`: a JSON Lines file (one line
    `{"class": ..., "text": ...}` per description, several per class allowed; relative to the
    spec), or `multidigits` for descriptions written from the shipped digit table."""
    unseen: Annotated[list[Union[Name, int]], Field(min_length=1)]
    """The classes held out of training, as the table names them; the others are the seen classes."""
    method: Literal["dap", "eszsl", "ale", "sje", "text"] = "ale"
    """How an image and a class description are matched: `dap` (Lampert et al., CVPR 2009 / TPAMI
    2014: one probabilistic classifier per attribute, classes by their attributes' posterior),
    `eszsl` (Romera-Paredes & Torr, ICML 2015: a bilinear map fitted by squared loss; closed form on
    fixed features), `ale` (Akata et al., CVPR 2013 / TPAMI 2016: a bilinear compatibility trained
    with a weighted approximate ranking loss) or `sje` (Akata et al., CVPR 2015: the same
    compatibility with a structured max-margin loss) or `text` (text-embedding matching, as CLIP
    classifies without examples, Radford et al., ICML 2021: the class `descriptions` go through the
    model's text tower, trained on the seen classes' with the rest; cosine at a learned temperature)."""
    embedding: PositiveInt = 64
    """`method: text`: width of the space images and descriptions are matched in."""
    temperature: Annotated[float, Field(ge=0.01, le=1.0)] = 0.07
    """`method: text`: the starting temperature of the cosine scores (learned; floored at 0.01)."""
    word_dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    """`method: text`: in training, each word of a description is dropped with this probability
    (Iyyer et al., ACL 2015), so each phrase must mean something alone: what lets the text tower
    read an unseen class's new combination of phrases. 0: descriptions are read whole. On the
    digits it lowered ZSL top-1 for every tower tried (docs/results.md)."""
    centre: bool = True
    """`method: text`: the class embeddings are centred on the seen classes' mean before the
    cosine, as the attribute methods standardise their table: the words every description shares
    ("a handwritten digit with") otherwise point every class the same way."""
    eszsl_gamma: Annotated[float, Field(ge=0, le=1e6)] = 1e-3
    """ESZSL's gamma (the penalty on the attributes' projection into feature space, ||VS||^2), per
    training sample: the paper's gamma over N samples is N times this."""
    eszsl_lambda: Annotated[float, Field(ge=0, le=1e6)] = 1e-3
    """ESZSL's lambda (the penalty on the features' projection into attribute space, ||X^T V||^2)."""
    calibration: Annotated[float, Field(ge=-1e3, le=1e3)] = 0.0
    """Calibrated stacking (Chao et al., ECCV 2016): subtracted from every seen class's score before
    predicting, so unseen classes are not drowned by the seen ones the model was trained on. The
    report's seen-unseen curve shows the trade-off over all values; choose one on validation data."""
    hold_out_images: bool = True
    """Training drops every sample of this dataset whose label is an unseen class, for every task
    (no task's loss trains the shared network on images of unseen classes: the protocol of Xian et
    al.). False: only this task skips them, and the other tasks on the dataset train on them."""
    hidden: PositiveInt = 128
    """Width of the image embedding the map into attribute space starts from."""
    metrics: list[Literal["zsl_top1", "gzsl_u", "gzsl_s", "gzsl_h", "ausuc"]] = ["zsl_top1", "gzsl_u", "gzsl_s", "gzsl_h", "ausuc"]

    @property
    def unseen_names(self) -> list[str]:
        return [str(u) for u in self.unseen]


class ImageTextRetrieval(TaskBase):
    """Image-text retrieval as CLIP trains it (Radford et al., ICML 2021): the image and its text are
    embedded by their towers into one space and trained with the symmetric InfoNCE loss over the
    batch. Scored by recall@1, 5 and 10 both ways over the whole evaluation split: image to text
    (the rank of an image's own text among every text) and text to image. A text written the same
    way for several images (templated captions) matches each of them: one of those ranked first is
    a hit, and in training they are all positives of each other."""

    TEXT_FIELDS: ClassVar = ("text",)  # fields naming the dataset's text fields it reads
    DIRECTIONS: ClassVar = {"i2t_r1": True, "i2t_r5": True, "i2t_r10": True, "t2i_r1": True, "t2i_r5": True, "t2i_r10": True, "rsum": True}
    type: Literal["image_text_retrieval"]
    text: Name = "caption"
    """The text field of the dataset that describes each image."""
    embedding: Annotated[int, Field(ge=2, le=4096)] = 128
    """Width of the joint embedding space."""
    temperature: Annotated[float, Field(gt=0, le=1)] = 0.07
    """The softmax temperature the loss starts from (CLIP's 0.07); learned from there, floored at 0.01."""
    metrics: list[Literal["i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum"]] = ["i2t_r1", "i2t_r5", "t2i_r1", "t2i_r5", "rsum"]


class VQA(TaskBase):
    """Visual question answering as answer classification (Antol et al., ICCV 2015): the image and
    the question meet in the model's `fusion`, and a classifier picks one of the training split's
    answers. Scored by accuracy (exact answer), and by its mean over question types, which a model
    that learns only the most common answer type cannot inflate; the report lists each type."""

    TEXT_FIELDS: ClassVar = ("question", "answer", "question_type")
    DIRECTIONS: ClassVar = {"accuracy": True, "type_accuracy": True}
    type: Literal["vqa"]
    question: Name = "question"
    """The text field holding each image's question."""
    answer: Name = "answer"
    """The text field holding its answer (the answers seen in training are the classes)."""
    question_type: Name | None = "question_type"
    """The text field naming the question's type, for per-type accuracy (null: one type)."""
    metrics: list[Literal["accuracy", "type_accuracy"]] = ["accuracy", "type_accuracy"]


class ClipClassification(TaskBase):
    """A class per clip (moving_digits' `direction`, `actor` or `action`): the backbone on each frame
    under model.temporal, the frames' features pooled over time, a linear head, cross-entropy."""

    DIRECTIONS: ClassVar = {"accuracy": True, "top_k": True, "macro_f1": True}
    CLIP_LEVEL: ClassVar = "clip"
    type: Literal["clip_classification"]
    label: Name
    num_classes: PositiveInt | None = None
    """Number of classes; the dataset's when absent."""
    metrics: list[Literal["accuracy", "top_k", "macro_f1"]] = ["accuracy", "macro_f1"]
    top_k: PositiveInt = 5


class TemporalLocalization(TaskBase):
    """When each event of a clip starts and ends, and its class (moving_digits' `events`: when each
    digit is on screen). Anchor-free on the sequence of frame features, as
    ActionFormer (Zhang et al., ECCV 2022) is at one scale: temporal convolutions, then at each
    frame a score per class (positive inside an event of the class) and its
    distances to the event's start and end (1 - tIoU loss); segments decoded at every frame, kept
    by per-class non-maximum suppression. Scored as ActivityNet does (Heilbron et al., CVPR 2015):
    mAP averaged over tIoU 0.5:0.05:0.95, and at 0.5 and 0.75."""

    DIRECTIONS: ClassVar = {"map": True, "map50": True, "map75": True}
    CLIP_LEVEL: ClassVar = "clip"
    type: Literal["temporal_localization"]
    label: Name = "events"
    num_classes: PositiveInt | None = None
    """Event classes; the dataset's when absent."""
    hidden: Annotated[int, Field(ge=8, le=1024)] = 128
    """Channels of the head's temporal convolutions."""
    layers: Annotated[int, Field(ge=1, le=8)] = 2
    """Temporal convolutions (kernel 3) before the class and boundary outputs."""
    class_loss: Literal["bce", "focal"] = "bce"
    """The per-frame class scores' loss: `bce`, binary cross-entropy summed over the classes and
    averaged over the frames, or `focal`, ActionFormer's sigmoid focal loss (alpha 0.25, gamma 2)
    normalised by the clip's positives. On moving_digits the focal loss stayed at the classes'
    base rates for 5 epochs (mAP 0.11, the trivial prior's level) where bce reached 0.26
    (docs/results.md)."""
    nms_tiou: Annotated[float, Field(gt=0, le=1)] = 0.5
    """Two segments of one class overlapping by more than this tIoU: the lower-scored is dropped."""
    max_segments: Annotated[int, Field(ge=1, le=1000)] = 50
    """Segments kept per clip, highest scores first."""
    metrics: list[Literal["map", "map50", "map75"]] = ["map", "map50", "map75"]


class ByteTrack(Section):
    """ByteTrack (Zhang et al., ECCV 2022), as MMDetection's ByteTracker runs it: a Kalman filter
    predicts each track's box; the confident boxes are matched to the tracks first, then the low
    ones to the tracks still unmatched (what recovers occluded objects), by IoU with lap's
    linear assignment. The settings are those of MMDetection's bytetrack configs."""

    type: Literal["ByteTrack"]
    score_high: Annotated[float, Field(gt=0, lt=1)] = 0.6
    """Boxes above this score take part in the first association."""
    score_low: Annotated[float, Field(gt=0, lt=1)] = 0.1
    """Boxes between this and score_high take part in the second; below it, none."""
    init_score: Annotated[float, Field(gt=0, lt=1)] = 0.7
    """An unmatched box above this score starts a new track."""
    match_iou_high: Annotated[float, Field(gt=0, le=1)] = 0.1
    """The least IoU of a match in the first association."""
    match_iou_low: Annotated[float, Field(gt=0, le=1)] = 0.5
    """The least IoU of a match in the second association."""
    match_iou_tentative: Annotated[float, Field(gt=0, le=1)] = 0.3
    """The least IoU of a match for a track not yet confirmed."""
    frames_retained: Annotated[int, Field(ge=1, le=1000)] = 30
    """Frames a lost track is kept to be found again."""


class FrameDetection(TaskBase):
    """Detection in every frame of a clip: the detection task's MMDetection heads on each frame's
    pyramid (the features under model.temporal, so a frame's boxes can use its neighbours), COCO
    box mAP over all frames; with `tracking`, the boxes of each clip are linked over time and
    scored as MOTChallenge does (MOTA, IDF1 at IoU 0.5, by the motmetrics package; HOTA over IoU
    0.05 to 0.95, by TrackEval)."""

    DIRECTIONS: ClassVar = {"map": True, "map50": True, "map75": True, "mota": True, "idf1": True, "hota": True}
    CLIP_LEVEL: ClassVar = "frame"
    TRACKING_METRICS: ClassVar = ("mota", "idf1", "hota")
    type: Literal["frame_detection"]
    head: Head
    tracking: ByteTrack | None = None
    """Link each clip's boxes into tracks (the dataset's track ids are the truth)."""
    metrics: list[Literal["map", "map50", "map75", "mota", "idf1", "hota"]] = ["map", "map50", "map75"]
    """`mota`, `idf1` and `hota` need `tracking`."""


class FrameSegmentation(TaskBase):
    """Semantic segmentation of every frame of a clip (the segmentation task per frame)."""

    DIRECTIONS: ClassVar = {"miou": True, "pixel_accuracy": True}
    CLIP_LEVEL: ClassVar = "frame"
    type: Literal["frame_segmentation"]
    num_classes: PositiveInt | None = None
    """Classes including background; the dataset's when absent."""
    metrics: list[Literal["miou", "pixel_accuracy"]] = ["miou", "pixel_accuracy"]


Task = Annotated[
    Union[Classification, Multilabel, Regression, Detection, Segmentation, InstanceSegmentation, Depth, ZeroShot,
          ImageTextRetrieval, VQA, ClipClassification, TemporalLocalization, FrameDetection, FrameSegmentation],
    Field(discriminator="type"),
]



def task_sections() -> dict[str, type[TaskBase]]:
    """Each task type's section, by its `type` tag."""
    union = typing.get_args(typing.get_args(Task)[0])
    return {typing.get_args(cls.model_fields["type"].annotation)[0]: cls for cls in union}


def metric_choices(task_type: str) -> tuple[str, ...]:
    """Every metric a task type can report (what its `metrics` list accepts)."""
    listed = task_sections()[task_type].model_fields["metrics"].annotation
    return typing.get_args(typing.get_args(listed)[0])


def default_metrics(task_type: str) -> tuple[str, ...]:
    """The metrics a task of this type reports when its spec does not list them."""
    return tuple(task_sections()[task_type].model_fields["metrics"].default)


def directions(spec: Any) -> dict[str, dict[str, bool]]:
    """Per task of a spec, whether a higher value of each of its type's metrics is better."""
    return {task: dict(type(section).DIRECTIONS) for task, section in spec.tasks.items()}


# Whether a higher value of each metric is better (each task type's section says it of its own
# metrics), for readers without a spec (compare reads report.json's own directions first).
HIGHER_IS_BETTER = {metric: higher for section in task_sections().values() for metric, higher in section.DIRECTIONS.items()}
