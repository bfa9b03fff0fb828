"""`python -m functions.runtime`: replace this process with gunicorn serving $KNFLOW_FUNCTION."""

import os
import sys

from .server import gunicorn_command

if "KNFLOW_FUNCTION" not in os.environ:
    sys.exit("Error: KNFLOW_FUNCTION is not set (the function to serve, e.g. echo)")
argv = gunicorn_command()
os.execv(argv[0], argv)
