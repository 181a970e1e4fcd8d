"""The compiled model: backbones and necks, sharing topologies, the MMDetection head adapter, the builder."""
