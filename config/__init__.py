"""Configuration: settings, packaged policies, logging."""

from config.logging import configure_logging
from config.settings import DEMO_POLICY, PACKAGED_POLICY, Settings

__all__ = ["DEMO_POLICY", "PACKAGED_POLICY", "Settings", "configure_logging"]
