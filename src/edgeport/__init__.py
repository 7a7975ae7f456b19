"""edgeport: compress, export, calibrate, verify and profile transformer models for edge targets."""

__version__ = "0.1.0"
