"""Fine-tune a stance classifier: same as `stance train`.

python scripts/train.py --config configs/withdrawal.yaml [--output-dir DIR] [key=value ...]
"""

import sys

from stance.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
