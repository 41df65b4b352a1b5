"""sentibench: GPT-2 vs encoder LLMs vs bag-of-words on IMDb sentiment."""

__version__ = "0.1.0"
