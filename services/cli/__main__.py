import os
import sys

from services.cli import app

os.environ.setdefault("PYTHONUNBUFFERED", "1")
sys.exit(app())
