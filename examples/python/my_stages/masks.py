"""A mask of chosen structures as a new field, with its volume. Class form: spineparse makes one
StructureMask(options) when the graph opens and calls process(case) per case.

options: {"structures": "vertebrae" | "discs" | a list of names such as ["L4", "L4/L5"]}.
Writes the field declared in the graph's "writes" (uint8, D,H,W), the metric mask_volume_ml and
a warning when none of the structures is found.
"""
import numpy as np

from .disc_signal import NAMES


class StructureMask:
    def __init__(self, options):
        wanted = options.get("structures", "vertebrae")
        if wanted == "vertebrae":
            self.labels = list(range(1, 11))
        elif wanted == "discs":
            self.labels = list(range(11, 20))
        else:
            unknown = [n for n in wanted if n not in NAMES[1:]]
            if unknown:
                raise ValueError("options.structures: unknown names " + ", ".join(unknown))
            self.labels = [NAMES.index(n) for n in wanted]
        self.field = options.get("field", "structure_mask")

    def process(self, case):
        mask = np.isin(case.fields["labels"], self.labels).astype(np.uint8)
        d, h, w = case.geometry.spacing_dhw
        out = {"fields": {self.field: mask},
               "metrics": {"mask_volume_ml": float(mask.sum()) * d * h * w / 1000.0}}
        if not mask.any():
            out["warnings"] = ["none of the mask's structures was found"]
        return out
