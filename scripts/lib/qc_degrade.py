#!/usr/bin/env python3
"""Degraded copies of a synthetic cohort with known truth, for calibrating and validating QC.

usage: qc_degrade.py COHORT OUT KIND [SEED]

COHORT is a folder `spineparse synth` wrote (original_mr/Case{i}.nii.gz, mask/mask_case{i}.nii.gz);
OUT gets the same layout with every case changed by KIND:
  noise         strong Rician noise (3 times the image's own noise floor, at least 60)
  low_contrast  intensities pulled toward their mean to a quarter of their spread
  inverted      a T1-like scan: bright fluid dark and dark bone bright (max - x)
  fov_cut       the field of view cut along the spine to the sacrum and the 3-4 levels above it
  upside_down   the voxels flipped along the spine while the header still says head up
The masks follow the voxels, so Dice against them stays the truth of the degraded scan.
"""
import os
import sys

import nibabel as nib
import numpy as np


def spine_axis(img):
    """The voxel axis closest to the patient's superior-inferior axis."""
    return int(np.argmax(np.abs(img.affine[2, :3])))


def degrade(image, mask, kind, rng):
    x = np.asarray(image.dataobj).astype(np.float64)
    m = np.asarray(mask.dataobj)
    affine, ax = image.affine, spine_axis(image)
    if kind == "noise":
        floor = np.percentile(x, 5)
        s = max(3 * floor, 60.0)
        x = np.hypot(x + rng.normal(0, s, x.shape), rng.normal(0, s, x.shape))
    elif kind == "low_contrast":
        mu = x.mean()
        x = mu + 0.25 * (x - mu)
    elif kind == "inverted":
        x = np.percentile(x, 99.5) - x
        x[x < 0] = 0
    elif kind == "fov_cut":
        # Keep the sacrum and the levels just above it: from the mask's caudal end, along the
        # spine, as far as the fourth vertebra above the sacrum's top (labels 2..5 = L5..L2).
        keep = int(rng.integers(3, 5))  # vertebrae above S kept: 3 or 4
        labels = [1, 2, 3, 4, 5][: keep + 1]
        idx = np.nonzero(np.isin(m, labels + [11, 12, 13, 14][:keep]))[ax]
        lo, hi = int(idx.min()), int(idx.max()) + 1
        margin = (hi - lo) // 20
        lo, hi = max(0, lo - margin), min(x.shape[ax], hi + margin)
        sl = [slice(None)] * 3
        sl[ax] = slice(lo, hi)
        x, m = x[tuple(sl)], m[tuple(sl)]
        shift = np.zeros(4)
        shift[ax] = lo
        affine = affine.copy()
        affine[:3, 3] = affine[:3, :3] @ shift[:3] + affine[:3, 3]
    elif kind == "upside_down":
        x, m = np.flip(x, ax).copy(), np.flip(m, ax).copy()
    else:
        raise SystemExit(f"unknown kind {kind}")
    out_x = nib.Nifti1Image(np.clip(np.rint(x), 0, 32767).astype(np.int16), affine)
    out_m = nib.Nifti1Image(m.astype(np.uint8), affine)
    return out_x, out_m


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    cohort, out, kind = sys.argv[1:4]
    rng = np.random.default_rng(int(sys.argv[4]) if len(sys.argv) > 4 else 0)
    os.makedirs(os.path.join(out, "original_mr"), exist_ok=True)
    os.makedirs(os.path.join(out, "mask"), exist_ok=True)
    for name in sorted(os.listdir(os.path.join(cohort, "original_mr"))):
        number = name[len("Case"):-len(".nii.gz")]
        image = nib.load(os.path.join(cohort, "original_mr", name))
        mask = nib.load(os.path.join(cohort, "mask", f"mask_case{number}.nii.gz"))
        x, m = degrade(image, mask, kind, rng)
        nib.save(x, os.path.join(out, "original_mr", name))
        nib.save(m, os.path.join(out, "mask", f"mask_case{number}.nii.gz"))


if __name__ == "__main__":
    main()
