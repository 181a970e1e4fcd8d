"""The `weighting` section: how task losses are combined, one tag per method with its paper's defaults.
Loss-based methods map the task losses to weights; gradient-based methods (those with a
`space` field) combine the per-task gradients of the shared part.
"""


from typing import Annotated, Literal, Union

from pydantic import Field

from mtlspec.language.base import Name, PositiveFloat, PositiveInt, Section

Space = Literal["params", "representation"]


class Static(Section):
    """Fixed weights; tasks not listed weigh 1."""

    type: Literal["static"]
    weights: dict[Name, Annotated[float, Field(ge=0)]] = {}


class EqualWeighting(Section):
    type: Literal["ew"]


class UncertaintyWeighting(Section):
    """Kendall, Gal, Cipolla, CVPR 2018: learned homoscedastic uncertainty per task."""

    type: Literal["uw"]


class GradNorm(Section):
    """Chen et al., ICML 2018: weights that equalise gradient norms scaled by relative training rates."""

    type: Literal["gradnorm"]
    alpha: Annotated[float, Field(ge=0)] = 1.5


class DWA(Section):
    """Dynamic weight average (Liu, Johns, Davison, CVPR 2019)."""

    type: Literal["dwa"]
    T: PositiveFloat = 2.0


class RLW(Section):
    """Random loss weighting (Lin et al., TMLR 2022): weights drawn each step."""

    type: Literal["rlw"]
    distribution: Literal["normal", "uniform", "dirichlet"] = "normal"


class GLS(Section):
    """Geometric loss strategy (Chennupati et al., CVPRW 2019): the geometric mean of the losses."""

    type: Literal["gls"]


class MGDA(Section):
    """Sener & Koltun, NeurIPS 2018; `space: representation` is their MGDA-UB upper bound."""

    type: Literal["mgda"]
    normalization: Literal["none", "l2", "loss", "loss+"] = "loss+"
    space: Space = "params"


class PCGrad(Section):
    """Yu et al., NeurIPS 2020: projects away the conflicting components of task gradients."""

    type: Literal["pcgrad"]
    space: Space = "params"


class GradDrop(Section):
    """Chen et al., NeurIPS 2020: drops gradient signs by their consistency."""

    type: Literal["graddrop"]
    leak: Annotated[float, Field(ge=0, le=1)] = 0.0
    space: Space = "representation"


class GradVac(Section):
    """Wang et al., ICLR 2021: aligns gradients toward an EMA of their cosine similarity."""

    type: Literal["gradvac"]
    beta: Annotated[float, Field(ge=0, le=1)] = 0.01
    space: Space = "params"


class IMTL(Section):
    """Liu et al., ICLR 2021: impartial MTL (IMTL-G on gradients, IMTL-L on losses)."""

    type: Literal["imtl"]
    space: Space = "params"


class CAGrad(Section):
    """Liu et al., NeurIPS 2021: conflict-averse gradient descent."""

    type: Literal["cagrad"]
    c: Annotated[float, Field(ge=0, lt=1)] = 0.4
    rescale: Literal[0, 1, 2] = 1
    space: Space = "params"


class NashMTL(Section):
    """Navon et al., ICML 2022: the Nash bargaining solution over task gradients."""

    type: Literal["nash_mtl"]
    update_weights_every: PositiveInt = 1
    optim_niter: PositiveInt = 20
    max_norm: Annotated[float, Field(ge=0)] = 1.0
    space: Space = "params"


class AlignedMTL(Section):
    """Senushkin et al., CVPR 2023: aligns the principal components of the gradient matrix."""

    type: Literal["aligned_mtl"]
    space: Space = "params"


class DBMTL(Section):
    """Lin et al., 2023: dual-balancing of log-losses and gradient magnitudes."""

    type: Literal["db_mtl"]
    beta: Annotated[float, Field(ge=0, lt=1)] = 0.9
    beta_sigma: Annotated[float, Field(ge=0)] = 0.5
    space: Space = "params"


class FAMO(Section):
    """Liu et al., NeurIPS 2023: fast adaptive multitask optimisation, O(1) per step."""

    type: Literal["famo"]
    gamma: Annotated[float, Field(ge=0)] = 1.0e-3
    """Weight decay of the task logits."""
    w_lr: PositiveFloat = 0.025
    """Learning rate of the task logits."""


class FairGrad(Section):
    """Ban & Ji, ICML 2024: alpha-fair resource allocation over task gradients."""

    type: Literal["fairgrad"]
    alpha: PositiveFloat = 1.0
    space: Space = "params"


class UPGrad(Section):
    """Quinton & Rey, 2024: unconditional projection of gradients onto the dual cone (torchjd)."""

    type: Literal["upgrad"]
    space: Space = "params"


Weighting = Annotated[
    Union[
        Static,
        EqualWeighting,
        UncertaintyWeighting,
        GradNorm,
        DWA,
        RLW,
        GLS,
        MGDA,
        PCGrad,
        GradDrop,
        GradVac,
        IMTL,
        CAGrad,
        NashMTL,
        AlignedMTL,
        DBMTL,
        FAMO,
        FairGrad,
        UPGrad,
    ],
    Field(discriminator="type"),
]

# Methods that need per-task gradients of shared parameters. GradNorm reads the gradient
# norms of the last shared layer's weights (the paper's W), so it has no `space` to choose.
GRADIENT_METHODS = (
    "gradnorm", "mgda", "pcgrad", "graddrop", "gradvac", "imtl", "cagrad",
    "nash_mtl", "aligned_mtl", "db_mtl", "fairgrad", "upgrad",
)
