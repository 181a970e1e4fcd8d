"""Sharing topologies, one per file, looked up in a plain dict by the spec's `model.sharing.type`."""

from mtlspec.model.sharing.hps import HardParameterSharing

TOPOLOGIES = {"hps": HardParameterSharing}
