"""The offline playground: fictitious-authors benchmark, tokenizer, target and retain models."""

from wagle.playground.build import PlaygroundConfig, build_playground, load_info

__all__ = ["PlaygroundConfig", "build_playground", "load_info"]
