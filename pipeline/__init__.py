"""capforecast: forecast a code model's capability and loss from a family of smaller checkpoints."""

__version__ = "0.1.0"
