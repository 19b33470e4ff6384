"""nordpipe: turn raw Nordic text into LLM pre-training data."""

__version__ = "0.1.0"
