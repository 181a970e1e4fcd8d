"""The `data` section: datasets, sampling across datasets, sample weights, batch and image size."""

from typing import Annotated, ClassVar, Literal, Union

from pydantic import Field

from mtlspec.language.base import Name, PositiveInt, Probability, Section


def most_digits(canvas: int) -> int:
    """The most digits multidigits places reliably on a canvas of this side. Digits are drawn at
    a size proportional to the canvas (never under 8 px) and must stay half visible; measured,
    placing 7 at once takes 7 tries on average (a sample gives up after 100), 6 takes 3, and
    below 24 px 5 takes 7 tries, 4 takes 3."""
    return 6 if canvas >= 24 else 4


class ObjectCount(Section):
    min: PositiveInt = 1
    """Fewest digits on a canvas."""
    max: PositiveInt = 3
    """Most digits on a canvas."""


SplitSize = Annotated[int, Field(ge=1, le=200_000)]


class Splits(Section):
    train: SplitSize = 4000
    val: SplitSize = 500
    test: SplitSize = 500


DIGIT_CLASSES = 10


def multidigits_classes(label: str | None, max_objects: int) -> int | None:
    """How many classes (or labels) a multidigits label has, None for a label without classes;
    `label` None: the segmentation masks (background and one class per digit)."""
    return {"largest_digit": DIGIT_CLASSES, "smallest_digit": DIGIT_CLASSES, "num_digits": max_objects + 1,
            "present": DIGIT_CLASSES, None: DIGIT_CLASSES + 1}.get(label)


class ResizedCrop(Section):
    """A random part of the image, of `scale` of its area and `ratio` width/height, which is then
    resized to the model's input as usual. Masks and depth are cropped with it; boxes are clipped
    to it and dropped where less than `min_visible` of their area is left. Image-level labels are
    kept as they are (as for classification crops): keep `scale` high for labels that count
    objects."""

    p: Probability = 0.5
    scale: Annotated[list[Annotated[float, Field(gt=0, le=1)]], Field(min_length=2, max_length=2)] = [0.3, 1.0]
    ratio: Annotated[list[Annotated[float, Field(gt=0, le=10)]], Field(min_length=2, max_length=2)] = [0.75, 1.3333]
    min_visible: Probability = 0.3


class Photometric(Section):
    """Brightness, contrast and saturation scaled by a factor in [1 - x, 1 + x], hue shifted by up
    to `hue` of the colour circle; no label moves."""

    p: Probability = 0.5
    brightness: Annotated[float, Field(ge=0, le=1)] = 0.2
    contrast: Annotated[float, Field(ge=0, le=1)] = 0.2
    saturation: Annotated[float, Field(ge=0, le=1)] = 0.2
    hue: Annotated[float, Field(ge=0, le=0.5)] = 0.02


class RandAugment(Section):
    """`n` operations drawn per image from RandAugment's photometric ones (auto-contrast,
    equalize, posterize, solarize, colour, contrast, brightness, sharpness) at `magnitude` of 10
    (Cubuk et al., 2020); the geometric ones (rotate, shear, translate) are left out, since boxes
    and masks would have to follow them."""

    n: Annotated[int, Field(ge=1, le=8)] = 2
    magnitude: Annotated[int, Field(ge=0, le=10)] = 9


class Augment(Section):
    """Training-time transforms of one dataset's images, drawn from (seed, epoch, sample): the same
    on every machine and worker; evaluation never sees them. Applied before the resize, with the
    spec-wide `data.hflip` after it."""

    crop: ResizedCrop | None = None
    photometric: Photometric | None = None
    randaugment: RandAugment | None = None


class MultiDigits(Section):
    """The embedded dataset: canvases of scikit-learn's bundled handwritten digits (no download)."""

    type: Literal["multidigits"]
    canvas: Annotated[int, Field(ge=16, le=512)] = 64
    """Side of the square canvas in pixels."""
    objects: ObjectCount = ObjectCount()
    splits: Splits = Splits()
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    """Generation seed; the spec's seed when absent."""
    digits: Annotated[list[Annotated[int, Field(ge=0, le=9)]], Field(min_length=1, max_length=10)] | None = None
    """Only these digits appear on the canvases (all ten when absent); labels keep their values and
    class counts stay those of ten digits, so runs on digits 0-4 and a task on 5-9 share class ids
    (holding classes out of pretraining, as few-shot comparisons need)."""
    augment: Augment | None = None

    @classmethod
    def provides(cls, raw: dict) -> dict[str, set[str] | None]:
        """Task type -> the label names this dataset gives it (set() for labels without a name:
        boxes, masks, depth; None: any name)."""
        return {"classification": {"largest_digit", "smallest_digit", "num_digits"}, "zero_shot": {"largest_digit", "smallest_digit"},
                "multilabel": {"present"},
                "regression": {"count", "mean_digit", "digit_sum"}, "detection": set(), "segmentation": set(),
                "instance_segmentation": set(), "depth": set()}

    @classmethod
    def text_fields(cls, raw: dict) -> set[str] | None:
        """The text fields every sample has (None: any name, known once the data is read)."""
        return {"caption", "question", "answer", "question_type"}


class CocoAnnotations(Section):
    train: str
    val: str | None = None
    test: str | None = None


class Coco(Section):
    """A COCO-format dataset: instances_*.json with its images; boxes, masks and attributes."""

    type: Literal["coco"]
    root: str
    """Folder holding the images; annotation paths are relative to it."""
    annotations: CocoAnnotations
    attributes: dict[Name, Literal["classification", "multilabel", "regression"]] = {}
    """Image-level labels, and the task type each feeds: read from each image's `attributes` field,
    or from `attributes_table` when given."""
    attributes_table: str | None = None
    """A CSV side table (relative to root) with a `file_name` column and one column per attribute."""
    text: str | None = None
    """A JSON Lines file (relative to the spec) of the images' text: one object per line, `image`
    naming the image as this dataset does, every other key a text field (`caption`, `question`,
    `answer` ...) that tasks reading text name."""
    augment: Augment | None = None

    @classmethod
    def provides(cls, raw: dict) -> dict[str, set[str] | None]:
        out: dict[str, set[str] | None] = {"detection": set(), "segmentation": set(), "instance_segmentation": set(), "multilabel": {"categories"}}
        attributes = raw.get("attributes")
        for name, task_type in (attributes.items() if isinstance(attributes, dict) else []):
            out.setdefault(str(task_type), set()).add(name)  # type: ignore[union-attr]
        if "classification" in out:  # a class attribute can be a zero-shot task's classes
            out["zero_shot"] = set(out["classification"])  # type: ignore[arg-type]
        return out


class AttributeTable(Section):
    """Images with a table of attributes: CSV, or CelebA's list_attr_celeba.txt layout (+1/-1)."""

    type: Literal["attribute_table"]
    table: str
    images: str
    """Folder holding the images named in the table."""
    format: Literal["csv", "celeba"] = "csv"
    columns: list[Name] | None = None
    """The label columns, when known; validate then checks that tasks name real columns."""
    text: str | None = None
    """A JSON Lines file (relative to the spec) of the images' text: one object per line, `image`
    naming the image as this dataset does, every other key a text field (`caption`, `question`,
    `answer` ...) that tasks reading text name."""
    augment: Augment | None = None

    @classmethod
    def provides(cls, raw: dict) -> dict[str, set[str] | None]:
        columns = raw.get("columns")
        known = set(columns) if isinstance(columns, list) else None
        return {"classification": known, "zero_shot": known, "regression": known, "multilabel": {"attributes"}}


class ImageFolder(Section):
    """Images in one sub-folder per class."""

    type: Literal["image_folder"]
    root: str
    text: str | None = None
    """A JSON Lines file (relative to the spec) of the images' text: one object per line, `image`
    naming the image as this dataset does, every other key a text field (`caption`, `question`,
    `answer` ...) that tasks reading text name."""
    augment: Augment | None = None

    @classmethod
    def provides(cls, raw: dict) -> dict[str, set[str] | None]:
        return {"classification": {"class"}, "zero_shot": {"class"}}


class DenseFolder(Section):
    """Per sample an image, a PNG mask and an NPY depth map (the layout NYUv2 copies use)."""

    type: Literal["dense_folder"]
    root: str
    num_classes: PositiveInt | None = None
    augment: Augment | None = None

    @classmethod
    def provides(cls, raw: dict) -> dict[str, set[str] | None]:
        return {"segmentation": set(), "depth": set()}


class MovingObjects(Section):
    min: Annotated[int, Field(ge=1, le=4)] = 1
    """Fewest digits in a clip (the actor counts)."""
    max: Annotated[int, Field(ge=1, le=4)] = 2
    """Most digits in a clip: the actor and up to max - 1 visitors."""


class ClipSplits(Section):
    train: SplitSize = 1000
    val: SplitSize = 200
    test: SplitSize = 200


class MovingDigits(Section):
    """The embedded video dataset: clips of scikit-learn's digit scans moving over a textured
    canvas (no download). An actor digit crosses the frame left, right, up or down and stays in
    view; visitors appear, bounce off the edges and leave. Labels: `direction`, `actor`, `action`
    (actor and direction, 40 classes), `events` (each digit's class, first and end frame on screen),
    `visits` (when each visitor is on screen, one class), and in
    every frame each digit's box, class, track id and the class map (data/moving_digits.py)."""

    CLIPS: ClassVar = True
    type: Literal["moving_digits"]
    canvas: Annotated[int, Field(ge=32, le=256)] = 64
    """Side of the square frames in pixels."""
    frames: Annotated[int, Field(ge=3, le=64)] = 8
    """Frames per clip."""
    objects: MovingObjects = MovingObjects()
    splits: ClipSplits = ClipSplits()
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    """Generation seed; the spec's seed when absent."""

    @classmethod
    def provides(cls, raw: dict) -> dict[str, set[str] | None]:
        return {"clip_classification": {"direction", "actor", "action"}, "temporal_localization": {"events", "visits"},
                "frame_detection": set(), "frame_segmentation": set()}

    @classmethod
    def text_fields(cls, raw: dict) -> set[str] | None:
        return set()


class VideoFolder(Section):
    """Clips, one sub-folder per class: root/<class>/<clip>, or root/<split>/<class>/<clip> (the
    layout of UCF101 and HMDB51). A clip is a folder of frame images (in file-name order) or a
    video file (mp4, avi, mkv, webm, mov, m4v; decoded with PyAV). Without split folders, val and
    test are a seeded 10% each."""

    CLIPS: ClassVar = True
    type: Literal["video_folder"]
    root: str

    @classmethod
    def provides(cls, raw: dict) -> dict[str, set[str] | None]:
        return {"clip_classification": {"class"}}

    @classmethod
    def text_fields(cls, raw: dict) -> set[str] | None:
        return set()


class TrackedVideos(Section):
    """What the datasets of annotated videos share: clips, each frame's boxes, classes and track ids
    for frame_detection (and its tracking), no text."""

    CLIPS: ClassVar = True

    @classmethod
    def provides(cls, raw: dict) -> dict[str, set[str] | None]:
        return {"frame_detection": set()}

    @classmethod
    def text_fields(cls, raw: dict) -> set[str] | None:
        return set()


class CocoVid(TrackedVideos):
    """Videos in the COCO-VID layout (MMDetection's video datasets; what its mot2coco converter
    writes): a COCO file whose `videos` list the videos, whose images carry `video_id` and
    `frame_id`, and whose annotations carry `instance_id` (the track). Every frame's boxes, classes
    and track ids, for frame_detection and its tracking; crowd and `ignore` annotations are regions
    to ignore, and mot2coco's `mot_conf: 0` rows are left out."""

    type: Literal["coco_vid"]
    root: str
    """Folder holding the frames; annotation paths are relative to it."""
    annotations: CocoAnnotations
    categories: list[int] | None = None
    """The category ids that are classes; annotations of other categories are left out. All
    (but `ignore_categories`) when absent."""
    ignore_categories: list[int] = []
    """Category ids whose boxes are regions to ignore, whatever their flag (for a MOTChallenge file
    from mot2coco: [2, 7, 8, 12], person on vehicle, static person, distractor, reflection, as its
    evaluation does; with `categories: [1]`)."""
    min_visibility: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Annotations with a `visibility` below this are left out of training and scoring (TrackEval
    has no such filter: keep 0 to score as the benchmark does)."""
    frames: PositiveInt | None = None
    """Frames per clip: each video cut into consecutive clips of this many frames (a shorter last
    piece dropped); one clip per video when absent."""
    carve: Literal["videos", "frames"] = "videos"
    """How val and test without a file of their own come out of the training file: a seeded 10%
    of the videos each, or each video's frames after its first 80% (then 90%)."""


class MotChallenge(TrackedVideos):
    """MOTChallenge sequences (MOT16, MOT17, MOT20): root/<sequence>/{seqinfo.ini, img1/, gt/gt.txt},
    or the same under root/train/ (and root/val/, root/test/ where they hold ground truth). Every
    frame's boxes, classes and track ids, for frame_detection and its tracking, read as
    MOTChallenge's evaluation reads them (flag-0 rows left out, distractors ignored); one copy of
    each of MOT17's thrice-shipped sequences."""

    type: Literal["mot"]
    root: str
    classes: dict[Annotated[int, Field(ge=1)], Name] = {1: "pedestrian"}
    """MOT class number -> the name of the class it is (MOT17: 1 pedestrian, 2 person on vehicle,
    3 car, 4 bicycle, 5 motorbike, 6 non-motorized vehicle, 7 static person, 8 distractor ...);
    default {1: pedestrian}, MOTChallenge's one scored class."""
    ignore_classes: list[Annotated[int, Field(ge=1)]] = [2, 7, 8, 12]
    """MOT class numbers whose rows are regions to ignore (TrackEval's distractors for MOT17; add 6
    for MOT20); rows of classes neither here nor in `classes` are left out."""
    sequences: list[str] | None = None
    """The training folder's sequences to read; all when absent, with one copy of each of MOT17's
    (shipped once per public detector: -FRCNN kept)."""
    min_visibility: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Rows less visible than this (gt.txt's last column) are left out of training and scoring
    (TrackEval has no such filter: keep 0 to score as the benchmark does)."""
    frames: PositiveInt | None = None
    """Frames per clip: each sequence cut into consecutive clips of this many frames; one clip per
    sequence when absent."""
    carve: Literal["videos", "frames"] = "frames"
    """How val and test without a folder of their own come out of training: each sequence's frames
    after its first 80% (then 90%), the usual split of a few long sequences, or a seeded 10% of the sequences."""


def is_clips(raw: dict) -> bool:
    """Whether a dataset (as written) gives clips rather than images."""
    kind = raw.get("type") if isinstance(raw, dict) else None
    return bool(getattr(DATASETS.get(kind) if isinstance(kind, str) else None, "CLIPS", False))


def text_fields(raw: dict, section: type) -> set[str] | None:
    """The text fields a dataset gives: the embedded dataset's own, a `text` file's (any name, read
    with the data), or none."""
    if hasattr(section, "text_fields"):
        return section.text_fields(raw)
    return None if isinstance(raw.get("text"), str) else set()


Dataset = Annotated[Union[MultiDigits, MovingDigits, VideoFolder, CocoVid, MotChallenge, Coco, AttributeTable, ImageFolder, DenseFolder],
                    Field(discriminator="type")]
DATASETS = {cls.model_fields["type"].annotation.__args__[0]: cls
            for cls in (MultiDigits, MovingDigits, VideoFolder, CocoVid, MotChallenge, Coco, AttributeTable, ImageFolder, DenseFolder)}


class RoundRobin(Section):
    type: Literal["round_robin"]


class Proportional(Section):
    type: Literal["proportional"]


class Temperature(Section):
    """Datasets drawn with probability proportional to n^(1/t): t = 1 is proportional, larger t
    flattens towards uniform, smaller t favours the largest dataset."""

    type: Literal["temperature"]
    t: Annotated[float, Field(ge=0.01, le=1000)] = 2.0


Sampling = Annotated[Union[RoundRobin, Proportional, Temperature], Field(discriminator="type")]


class NoSampleWeights(Section):
    type: Literal["none"]


class InverseDatasetSize(Section):
    type: Literal["inverse_dataset_size"]


class InverseFrequency(Section):
    """Weights inversely proportional to the frequency of each sample's class in `task`."""

    type: Literal["inverse_frequency"]
    task: Name


class EffectiveNumber(Section):
    """Class-balanced weights (Cui et al., CVPR 2019): (1 - beta) / (1 - beta^n_c)."""

    type: Literal["effective_number"]
    task: Name
    beta: Annotated[float, Field(ge=0, lt=1)] = 0.999


class WeightColumn(Section):
    """Weights read from a column of a dataset's attribute table."""

    type: Literal["column"]
    dataset: Name
    column: str


SampleWeights = Annotated[
    Union[NoSampleWeights, InverseDatasetSize, InverseFrequency, EffectiveNumber, WeightColumn],
    Field(discriminator="type"),
]


class Holdout(Section):
    """One fold of each training set left out of training (the folds are the same for every seed)."""

    folds: Annotated[int, Field(ge=2, le=20)]
    fold: Annotated[int, Field(ge=0)]
    """Which fold to leave out, counted from 0."""


class HeldOutClasses(Section):
    """Training samples of a dataset whose label is one of some classes, dropped for every task."""

    dataset: Name
    label: Name
    classes: Annotated[list[Union[Name, int]], Field(min_length=1)]
    """The classes as the dataset names them (class indices where the label has no names)."""


class Clip(Section):
    """How clips are fed to the model: `length` frames, `stride` apart, from the middle of each clip."""

    length: Annotated[int, Field(ge=1, le=64)] = 8
    """Frames per clip the model sees (at most the clips' frames, with the stride)."""
    stride: Annotated[int, Field(ge=1, le=16)] = 1
    """Every stride-th frame of the clip."""


class Data(Section):
    datasets: Annotated[dict[Name, Dataset], Field(min_length=1)]
    sampling: Sampling = Proportional(type="proportional")
    sample_weights: SampleWeights = NoSampleWeights(type="none")
    batch_size: Annotated[int, Field(ge=1, le=4096)] = 32
    image_size: Annotated[int, Field(ge=16, le=4096)] = 64
    """Side of the square images fed to the model."""
    num_workers: Annotated[int, Field(ge=0, le=64)] = 0
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    """Seed of dataset generation and split assignment (multidigits canvases, the train/val/test
    split of COCO, tables and folders); the spec's seed when absent. Ensemble members keep their
    ensemble's, so they all train on one training split and none has seen its evaluation split."""
    bootstrap: Annotated[int, Field(ge=0)] | None = None
    """Train on a bootstrap sample of each training set (as many draws as samples, with
    replacement), drawn with this seed; bagging sets it for each member."""
    holdout: Holdout | None = None
    """Train without one fold of each training set; stacking sets it for its out-of-fold members."""
    held_out_classes: list[HeldOutClasses] = []
    """Training samples no task trains on (validation and test keep them). A zero-shot task holds
    out its unseen classes' images itself (hold_out_images); single-task baselines derived from a
    spec with one get its entry here, so they train on the same images as the joint run."""
    sample_overrides: str | None = None
    """An .npz file of per-task sample weights (`weight/<task>/<dataset>`) and regression targets
    (`target/<task>/<dataset>`), one value per training sample; boosting writes one per member."""
    clip: Clip = Clip()
    """For clip datasets (moving_digits): the window of frames each clip gives the model."""
    hflip: Probability = 0.0
    """Probability of mirroring a training image left-right (boxes, masks and depth move with it)."""
