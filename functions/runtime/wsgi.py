"""The WSGI entry point gunicorn loads: the function named by the environment."""

from __future__ import annotations

import logging

from ..config import FunctionConfig
from .app import create_app
from .loader import resolve_function

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

config = FunctionConfig.from_env()
application = create_app(resolve_function(config.function), config)
lifecycle = application.extensions["knflow"]["lifecycle"]
