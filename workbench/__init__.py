"""workbench: fine-tune, serve and check Hugging Face encoder models for KServe."""

__version__ = "0.1.0"
