"""Where things are: the repository and the (git-ignored) state directory."""
import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def state_dir() -> Path:
    """$HRP_STATE_DIR or REPO/.state, created if missing."""
    path = Path(os.environ.get("HRP_STATE_DIR") or REPO / ".state")
    path.mkdir(parents=True, exist_ok=True)
    return path
