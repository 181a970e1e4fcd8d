"""Loss weighting methods, one class per file, looked up in a plain dict by `weighting.type`."""

from mtlspec.weighting.equal import EqualWeighting
from mtlspec.weighting.static import StaticWeighting

METHODS = {"ew": EqualWeighting, "static": StaticWeighting}
