import sys
from pathlib import Path

# The ncmcp test kit is enabled for the whole repository by `-p ncmcp.testing` (root pyproject.toml).

# The repository runs pytest with --import-mode=importlib, which does not put test folders on
# sys.path; the helper modules next to the tests (files_helpers, bigfile) are imported by name.
sys.path.insert(0, str(Path(__file__).parent))
