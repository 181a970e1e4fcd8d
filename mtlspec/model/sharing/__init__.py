"""Sharing topologies, one per file, looked up in a plain dict by the spec's `model.sharing.type`."""

from mtlspec.model.sharing.cgc import CGC
from mtlspec.model.sharing.cross_stitch import CrossStitch
from mtlspec.model.sharing.hps import HardParameterSharing
from mtlspec.model.sharing.mmoe import MMoE
from mtlspec.model.sharing.mtan import MTAN
from mtlspec.model.sharing.ple import PLE
from mtlspec.model.sharing.separate import Separate
from mtlspec.model.sharing.soft import SoftSharing

TOPOLOGIES = {
    "separate": Separate,
    "hps": HardParameterSharing,
    "cross_stitch": CrossStitch,
    "mtan": MTAN,
    "mmoe": MMoE,
    "cgc": CGC,
    "ple": PLE,
    "soft": SoftSharing,
}
