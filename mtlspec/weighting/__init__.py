"""Loss weighting methods, one class per file, looked up in a plain dict by `weighting.type`."""

from mtlspec.weighting.aligned_mtl import AlignedMTL
from mtlspec.weighting.base import GradientAggregator, LossWeighting, Weighting
from mtlspec.weighting.cagrad import CAGrad
from mtlspec.weighting.db_mtl import DBMTL
from mtlspec.weighting.dwa import DynamicWeightAverage
from mtlspec.weighting.equal import EqualWeighting
from mtlspec.weighting.fairgrad import FairGrad
from mtlspec.weighting.famo import FAMO
from mtlspec.weighting.gls import GeometricLossStrategy
from mtlspec.weighting.graddrop import GradDrop
from mtlspec.weighting.gradnorm import GradNorm
from mtlspec.weighting.gradvac import GradVac
from mtlspec.weighting.imtl import IMTL
from mtlspec.weighting.mgda import MGDA
from mtlspec.weighting.nash_mtl import NashMTL
from mtlspec.weighting.pcgrad import PCGrad
from mtlspec.weighting.rlw import RandomLossWeighting
from mtlspec.weighting.static import StaticWeighting
from mtlspec.weighting.uncertainty import UncertaintyWeighting
from mtlspec.weighting.upgrad import UPGrad

METHODS: dict[str, type[Weighting]] = {
    "static": StaticWeighting,
    "ew": EqualWeighting,
    "uw": UncertaintyWeighting,
    "dwa": DynamicWeightAverage,
    "rlw": RandomLossWeighting,
    "gls": GeometricLossStrategy,
    "famo": FAMO,
    "gradnorm": GradNorm,
    "mgda": MGDA,
    "pcgrad": PCGrad,
    "graddrop": GradDrop,
    "gradvac": GradVac,
    "imtl": IMTL,
    "cagrad": CAGrad,
    "nash_mtl": NashMTL,
    "aligned_mtl": AlignedMTL,
    "db_mtl": DBMTL,
    "fairgrad": FairGrad,
    "upgrad": UPGrad,
}

__all__ = ["METHODS", "GradientAggregator", "LossWeighting", "Weighting"]
