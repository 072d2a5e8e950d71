"""The media a spec uses: asset names (what a `src` or an upload may be called) and AssetRef, one
typed reference per media field. Pure: no I/O.

A `src` is a bare name uploaded for the job (ASSET_NAME_RULE) or gs://INPUT_BUCKET/library/...;
errors are ValueError naming the refused value.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from shared.messages import shown

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._ -]{0,199}$")
# gs:// sources may only name the shared library folder of the input bucket: never another job's uploads.
LIBRARY_PREFIX = "library/"
_GS_RE = re.compile(r"^gs://([a-z0-9][a-z0-9._-]{1,220}[a-z0-9])/(library/[A-Za-z0-9._/ -]{1,900})$")

UPLOAD_NAME_RULE = ("a bare file name of ASCII letters, digits, '.', '_', '-' and spaces, starting with a letter, "
                    "digit or '_', at most 200 characters, without '/', '\\' or '..' (rename files with other "
                    "characters, e.g. accented letters)")
ASSET_NAME_RULE = UPLOAD_NAME_RULE + ", or a gs://INPUT_BUCKET/library/... URI"


def check_src(value: str) -> str:
    """A bare asset name uploaded for this job, or a gs:// URI under library/ (bucket checked by the service).

    Raises:
        ValueError: naming the offending value and the rule (ASSET_NAME_RULE).
    """
    if value.startswith("gs://"):
        m = _GS_RE.fullmatch(value)
        if not m or ".." in value or "//" in value[5:]:
            raise ValueError(f"{shown(value)} is not a usable gs:// URI: it must look like "
                             "gs://INPUT_BUCKET/library/... with no '..'")
        return value
    if "/" in value or "\\" in value or ".." in value or not _NAME_RE.fullmatch(value):
        raise ValueError(f"{shown(value)} is not a valid asset name: use {ASSET_NAME_RULE}")
    return value


def check_upload_name(value: str) -> str:
    """An `uploads[].name`: a bare asset name (UPLOAD_NAME_RULE; never a URI). Raises ValueError naming it."""
    if value.startswith("gs://"):
        raise ValueError(f"{shown(value)} must be a bare file name, not a gs:// URI")
    if "/" in value or "\\" in value or ".." in value or not _NAME_RE.fullmatch(value):
        raise ValueError(f"{shown(value)} is not a valid upload name: use {UPLOAD_NAME_RULE}")
    return value


Role = Literal["visual", "narration", "music"]
Media = Literal["image", "video", "audio"]


@dataclass(frozen=True)
class AssetRef:
    """One media field of a spec: `src` used as `role` by scene `scene` (0-based; None for music).

    media: what the field plays: a visual's type ("image" or "video"), else "audio".
    scene_id: the scene's `id` (None for music), for messages.
    """

    src: str
    role: Role
    scene: int | None = None
    scene_id: str | None = None
    media: Media = "audio"

    @property
    def field(self) -> str:
        """The field inside its scene (or the spec), e.g. "visual.src"."""
        return f"{self.role}.src"

    @property
    def path(self) -> str:
        """The spec path, e.g. "scenes[3].visual.src" or "music.src"."""
        return self.field if self.scene is None else f"scenes[{self.scene}].{self.field}"

    @property
    def label(self) -> str:
        """The path naming the scene's id too, e.g. "scenes[1] (id 's2') visual.src"."""
        return self.field if self.scene is None else f"scenes[{self.scene}] (id {self.scene_id!r}) {self.field}"

    @property
    def uploaded(self) -> bool:
        """True for a bare name uploaded for the job; False for a gs:// library URI."""
        return not self.src.startswith("gs://")
