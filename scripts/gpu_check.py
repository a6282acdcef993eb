"""Check a GPU machine in one command (see benchmarks/gpu_check.py and docs/guides/gpu.md).

python scripts/gpu_check.py [--dry-run] [--json OUT.json] [--bundle]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gpu_check import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
