"""Ensembles: combine the predictions of several trained members, per task, from the spec."""
