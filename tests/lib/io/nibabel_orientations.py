#!/usr/bin/python3
"""Writes NIfTI-1 files with nibabel for test_nibabel_geometry: every one of the 48 axis
orientations (signed permutations) under each header variant (sform only with codes 1-4, qform
only, both), plus small oblique rotations, and a manifest with nibabel's own affine of each
(nib.load(f).affine, RAS mm) so that the reader can be held to it.

Voxel (i, j, k) holds i + 100 j + 10000 k, so the reader's voxel order can be checked too.

usage: nibabel_orientations.py OUTDIR   (writes OUTDIR/*.nii.gz and OUTDIR/manifest.json)
"""
import itertools
import json
import os
import sys

import nibabel as nib
import numpy as np

SHAPE = (5, 6, 4)
SPACING = (0.7, 0.9, 4.0)  # anisotropic: an axis mix-up changes every world position


def volume():
    i, j, k = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    return (i + 100 * j + 10000 * k).astype(np.float32)


def rotation(axis, degrees):
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    a, b = [x for x in range(3) if x != axis]
    r = np.eye(3)
    r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
    return r


def affines():
    """(name, 4x4 affine): 48 signed permutations, then a few oblique ones."""
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            for col, (row, sign) in enumerate(zip(perm, signs)):
                m[row, col] = sign * SPACING[col]
            a = np.eye(4)
            a[:3, :3] = m
            a[:3, 3] = (-12.5, 30.25, 7.0)
            name = "p%d%d%d_" % perm + "".join("p" if s > 0 else "n" for s in signs)
            yield name, a
    for n, (axis, deg) in enumerate([(0, 5.0), (1, -7.5), (2, 12.0), (0, 20.0)]):
        a = np.eye(4)
        base = np.array([[0, 0, -1], [-1, 0, 0], [0, 1, 0]], dtype=float)  # a sagittal-ish PIL
        a[:3, :3] = rotation(axis, deg) @ base @ np.diag(SPACING)
        a[:3, 3] = (3.0, -4.0, 5.5)
        yield "oblique%d" % n, a


def entry(path):
    """The manifest's record of one written file: nibabel's own reading of it."""
    back = nib.load(path)
    return {"file": os.path.basename(path),
            "sform_code": int(back.header["sform_code"]),
            "qform_code": int(back.header["qform_code"]),
            "affine": back.affine.tolist(),
            "shape": list(back.shape)}


VARIANTS = [("sform%d" % c, c, 0) for c in (1, 2, 3, 4)] + [("qform", 0, 1)] + \
           [("both%d" % c, c, 1) for c in (1, 2, 3, 4)]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    data = volume()
    manifest = []
    for name, affine in affines():
        for variant, scode, qcode in VARIANTS:
            img = nib.Nifti1Image(data, affine)
            img.set_sform(affine if scode else None, code=scode)
            img.set_qform(affine if qcode else None, code=qcode)
            path = os.path.join(out, "%s_%s.nii.gz" % (name, variant))
            nib.save(img, path)
            manifest.append(entry(path))
    # The sform's axes longer than pixdim says (a header edited after the sform was set):
    # nibabel's affine is the sform's.
    for name, affine in list(affines())[:48:7]:
        img = nib.Nifti1Image(data, affine)
        img.set_sform(affine, code=2)
        img.set_qform(None, code=0)
        img.header.set_zooms((1.0, 1.0, 1.0))
        path = os.path.join(out, "%s_pixdim1.nii.gz" % name)
        nib.save(img, path)
        manifest.append(entry(path))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    print(len(manifest))


if __name__ == "__main__":
    main()
