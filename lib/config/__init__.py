from .config import (ConfigError, config, config_from_dict, configurable, is_config, load_config, update_config,
                     update_from_list)

__all__ = ["config", "update_config", "load_config", "update_from_list", "ConfigError", "configurable", "is_config",
           "config_from_dict"]
