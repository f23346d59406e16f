"""Patches: the outcome of a masked unlearning run as a module that can be shipped, audited,
applied to the original model, stacked with other requests and reverted exactly.

A patch file (``files``) holds, per changed tensor, the flat positions of the entries that
changed and their old and new values in the model's dtype, with a fingerprint of the base it
applies to. Every operation works on bits (``bits``), one tensor at a time:

- ``create_patch(base, unlearned, out)``: from two mappings of tensors (``ModelFiles(dir)``
  or ``model_tensors(model)``); ``save_run_patch`` for ``wagle unlearn --save patch``;
- ``apply_patch(model, p)`` / ``revert_patch(model, p)``: a loaded model, in place;
- ``apply_patch_files(dir, p, out)`` / ``revert_patch_files``: a saved model, into a new
  directory, without loading it;
- ``compose_patches(p1, p2, out)``: one patch equal to p1 then p2;
- ``patch_info(p)``: entries and bytes per layer, metadata.

Names are imported on first use, so ``wagle patch --help`` does not load torch.
"""

from __future__ import annotations

from wagle.lazy import lazy_exports

_EXPORTS = {
    "PatchFile": "wagle.patches.files",
    "open_patch": "wagle.patches.files",
    "create_patch": "wagle.patches.create",
    "apply_patch": "wagle.patches.memory",
    "revert_patch": "wagle.patches.memory",
    "apply_patch_files": "wagle.patches.ondisk",
    "revert_patch_files": "wagle.patches.ondisk",
    "compose_patches": "wagle.patches.compose",
    "patch_info": "wagle.patches.info",
    "ModelFiles": "wagle.patches.modelfiles",
    "model_tensors": "wagle.patches.signature",
    "mask_hash": "wagle.patches.runs",
    "save_run_patch": "wagle.patches.runs",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
