"""Draw the README's picture from the bundled sample: storage per repository and the
most shared layers (python scripts/readme_picture.py)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import reginsight as ri

OUT = Path(__file__).resolve().parent.parent / "docs" / "images" / "sample.png"


def main() -> None:
    inv = ri.Inventory.load(Path(__file__).resolve().parent.parent / "data" / "sample")
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), dpi=100)
    ri.plot_storage(inv, ax=left)
    ri.plot_layer_sharing(inv, ax=right)
    figure.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(OUT, bbox_inches="tight", metadata={"Software": None})
    print(OUT)


if __name__ == "__main__":
    main()
