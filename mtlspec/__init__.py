"""mtlspec: a declarative experiment language and toolchain for multi-task learning in vision."""

__version__ = "0.1.0"
