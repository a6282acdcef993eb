"""Typed run configuration: the schema (stance.config.schema) and its reading from YAML with
dotted overrides (stance.config.loading). The names below are the configuration's public API,
imported from here by the rest of the package."""

from .loading import config_help, dump_config, load_config, to_dict
from .schema import (
    DEFAULT_MAX_LENGTH,
    DataConfig,
    DataSource,
    FewShotConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)

__all__ = [
    "DEFAULT_MAX_LENGTH", "DataConfig", "DataSource", "FewShotConfig", "ModelConfig",
    "RunConfig", "TrainConfig", "config_help", "dump_config", "load_config", "to_dict",
]  # fmt: skip
