"""What this version of mtlspec can run, as opposed to what the spec language can say.

`validate` warns (code not-implemented) about every named part outside these sets, and
`run` refuses them, so a spec never fails late for lack of an implementation. The issues
that implement a part add its name here, in the same change as its code and tests.
"""

from __future__ import annotations

from mtlspec.tasks import TASK_TYPES

IMPLEMENTED: dict[str, frozenset[str]] = {
    "dataset": frozenset({"multidigits", "moving_digits", "video_folder", "coco_vid", "mot", "coco", "attribute_table", "image_folder", "dense_folder"}),
    "task": frozenset(TASK_TYPES),
    "backbone": frozenset({"SmallCNN", "ResNet", "ResNeXt", "RegNet", "PVT", "PVTv2", "Swin"}),
    "neck": frozenset({"FPN", "none"}),
    "sharing": frozenset({"separate", "hps", "cross_stitch", "mtan", "mmoe", "cgc", "ple", "soft"}),
    "weighting": frozenset({
        "static", "ew", "uw", "gradnorm", "dwa", "rlw", "gls", "mgda", "pcgrad", "graddrop", "gradvac",
        "imtl", "cagrad", "nash_mtl", "aligned_mtl", "db_mtl", "famo", "fairgrad", "upgrad",
    }),
    "ensemble": frozenset({"mean", "weighted_mean", "vote", "box_fusion", "snapshot", "bagging", "boosting", "stacking"}),
    "ensemble members": frozenset({"seeds", "specs", "runs"}),
    "detection head": frozenset({"FCOSHead", "RetinaHead", "ATSSHead", "GFLHead", "FSAFHead", "FoveaHead", "PAAHead",
                                  "AutoAssignHead", "FreeAnchorRetinaHead", "FasterRCNN", "MaskRCNN"}),
    "sample weights": frozenset({"none", "inverse_dataset_size", "inverse_frequency", "effective_number", "column"}),
    "baseline": frozenset({"none", "single_task", "run"}),
    "temporal": frozenset({"pool", "tsm", "r2plus1d"}),
    "tracker": frozenset({"ByteTrack"}),
}
