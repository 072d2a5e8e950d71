"""Export spec v1 (DESIGN §5) as a pydantic v2 model. Pure: no I/O.

The JSON Schema published at shared/schema/export_spec_v1.schema.json is generated from these
models (`make schema`); a unit test fails when it is stale.

Units: every `*S` field and `duration` is in seconds; volumes are linear gains (1.0 = unchanged);
`loudnessLufs` is integrated loudness in LUFS (EBU R128).
"""
from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from shared.assets import AssetRef, check_src
from shared.errors import InvalidRequest
from shared.finite import nonfinite_problem
from shared.spec_details import errors_to_details
from shared.text_rules import check_color, check_text
from shared.timeline import DEFAULT_SCENE_S, NARRATION_PAUSE_S, frame_problems  # noqa: F401 (re-exported)

# Every named FFmpeg xfade transition (`ffmpeg -h filter=xfade`, in its order; all exist since FFmpeg
# 6.1 and the job needs 7 or newer), plus "cut"; `custom` is left out (it needs an expression).
XFADE_TRANSITIONS: tuple[str, ...] = (
    "fade", "wipeleft", "wiperight", "wipeup", "wipedown",
    "slideleft", "slideright", "slideup", "slidedown",
    "circlecrop", "rectcrop", "distance", "fadeblack", "fadewhite", "radial",
    "smoothleft", "smoothright", "smoothup", "smoothdown", "circleopen", "circleclose",
    "vertopen", "vertclose", "horzopen", "horzclose", "dissolve", "pixelize",
    "diagtl", "diagtr", "diagbl", "diagbr", "hlslice", "hrslice", "vuslice", "vdslice",
    "hblur", "fadegrays", "wipetl", "wipetr", "wipebl", "wipebr", "squeezeh", "squeezev", "zoomin",
    "fadefast", "fadeslow", "hlwind", "hrwind", "vuwind", "vdwind",
    "coverleft", "coverright", "coverup", "coverdown", "revealleft", "revealright", "revealup", "revealdown",
)
TransitionType = Literal["cut", *XFADE_TRANSITIONS]  # type: ignore[valid-type]

# (width, height) per (resolution, aspectRatio)
FRAME_SIZES: dict[tuple[str, str], tuple[int, int]] = {
    ("720p", "16:9"): (1280, 720), ("720p", "9:16"): (720, 1280), ("720p", "1:1"): (720, 720),
    ("1080p", "16:9"): (1920, 1080), ("1080p", "9:16"): (1080, 1920), ("1080p", "1:1"): (1080, 1080),
}

MAX_SCENES = 200
MAX_SCENE_S = 600.0
MAX_CAPTION_CHARS = 500  # longest caption text or cue (EXPORT_MAX_CAPTION_CHARS can only lower it)

class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              frozen=True)

    @field_validator("*")
    @classmethod
    def _no_negative_zero(cls, v: Any) -> Any:
        # -0.0 is 0 (JSON.stringify(-0) is "0"): one spelling, so equal specs dump and digest alike
        return 0.0 if type(v) is float and v == 0 else v


_NAMES_APART = "asset names checked apart"  # validation context: parse_spec's second pass


def _src_field(cls: Any, value: str, info: ValidationInfo) -> str:
    """The field validator of every `src` (assets.check_src), skipped in parse_spec's second pass."""
    return value if info.context and info.context.get(_NAMES_APART) else check_src(value)


MotionType = Literal["none", "zoom-in", "zoom-out", "pan-left", "pan-right", "pan-up", "pan-down"]
FitType = Literal["cover", "contain", "blur"]
_FIT_DOC = ("cover: fill the frame and crop; contain: letterbox on black; blur: contain over a blurred, "
            "darkened copy of the same picture filling the frame")
_MOTION_DOC = ("Ken Burns motion over the scene: zoom-in/zoom-out (about the centre), pan-left/-right/-up/-down "
               "(the picture moves that way across the frame)")


class ImageVisual(_Model):
    """A still image fitted to the frame, optionally with Ken Burns motion."""

    type: Literal["image"]
    src: str
    fit: FitType = Field("cover", description=_FIT_DOC)
    motion: MotionType = Field("none", description=_MOTION_DOC)
    motion_strength: float = Field(0.15, ge=0, le=0.5,
                                   description="fraction of the frame zoomed or panned over the scene")

    _src = field_validator("src")(classmethod(_src_field))


class VideoVisual(_Model):
    """A video clip, fitted to the frame; its own audio is mixed at `volume` (0 = muted, the default)."""

    type: Literal["video"]
    src: str
    fit: FitType = Field("cover", description=_FIT_DOC)
    motion: MotionType = Field("none", description=_MOTION_DOC)
    motion_strength: float = Field(0.15, ge=0, le=0.5,
                                   description="fraction of the frame zoomed or panned over the scene")
    trim_start_s: float = Field(0.0, ge=0)
    trim_end_s: float | None = Field(None, gt=0, description="end time in the clip, seconds")
    volume: float = Field(0.0, ge=0, le=4, description="gain of the clip's own audio (linear); 0 = muted")

    _src = field_validator("src")(classmethod(_src_field))

    @model_validator(mode="after")
    def _trim_order(self) -> "VideoVisual":
        if self.trim_end_s is not None and self.trim_end_s <= self.trim_start_s:
            raise ValueError("trimEndS must be greater than trimStartS")
        return self


class ColorVisual(_Model):
    """A solid colour."""

    type: Literal["color"]
    color: str = "#000000"

    _color = field_validator("color")(classmethod(lambda cls, v: check_color(v)))


class TitleVisual(_Model):
    """A title card: `text` centred on a solid `background`, wrapped (rendered by libass, like captions)."""

    type: Literal["title"]
    text: str = Field(min_length=1, max_length=300)
    background: str = "#000000"
    text_color: str = "#ffffff"

    _colors = field_validator("background", "text_color")(classmethod(lambda cls, v: check_color(v)))
    _text = field_validator("text")(classmethod(lambda cls, v: check_text(v)))


Visual = Annotated[Union[ImageVisual, VideoVisual, ColorVisual, TitleVisual], Field(discriminator="type")]


class Narration(_Model):
    """Narration audio (WAV, MP3, OGG, M4A...) placed `offsetS` seconds after the scene's start."""

    src: str
    volume: float = Field(1.0, ge=0, le=4, description="linear gain")
    offset_s: float = Field(0.0, ge=0, le=MAX_SCENE_S, description="seconds after the scene's start")

    _src = field_validator("src")(classmethod(_src_field))


class CaptionCue(_Model):
    """A timed caption; times in seconds relative to the scene's start."""

    start_s: float = Field(ge=0)
    end_s: float = Field(gt=0)
    text: str = Field(min_length=1, max_length=MAX_CAPTION_CHARS)

    _text = field_validator("text")(classmethod(lambda cls, v: check_text(v)))

    @model_validator(mode="after")
    def _order(self) -> "CaptionCue":
        if self.end_s <= self.start_s:
            raise ValueError("endS must be greater than startS")
        return self


class Caption(_Model):
    """The scene's caption: either `text` (shown for the whole scene) or `cues` (timed, relative to the
    scene's start, in order and not overlapping)."""

    text: str | None = Field(None, min_length=1, max_length=MAX_CAPTION_CHARS)
    cues: list[CaptionCue] | None = Field(None, min_length=1, max_length=200)

    _text = field_validator("text")(classmethod(lambda cls, v: v if v is None else check_text(v)))

    @model_validator(mode="after")
    def _one(self) -> "Caption":
        if (self.text is None) == (self.cues is None):
            raise ValueError("give either text or cues")
        for k, (a, b) in enumerate(zip(self.cues or [], (self.cues or [])[1:]), 1):
            if b.start_s < a.end_s:  # the path names the later cue (errors_to_details: _SUB_PATH)
                raise ValueError(f"cues[{k}]: starts at {b.start_s:g} s, before cues[{k - 1}] ends at "
                                 f"{a.end_s:g} s: cues must be in time order and must not overlap")
        return self


class Transition(_Model):
    """The transition leading from this scene into the next (ignored on the last scene)."""

    type: TransitionType = "fade"  # type: ignore[valid-type]
    duration: float = Field(0.5, ge=0, le=5)


class Scene(_Model):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    visual: Visual
    narration: Narration | None = None
    caption: Caption | None = None
    # > 0 here; at least 2 frames of output.fps is checked with the frame rate (shared.timeline)
    duration: float | None = Field(None, gt=0, le=MAX_SCENE_S,
                                   description="seconds; null = narration length + 0.5 s, a clip's length, else 4 s")
    transition: Transition | None = None

    @model_validator(mode="after")
    def _within_scene(self) -> "Scene":
        if self.duration is not None:
            if self.narration is not None and self.narration.offset_s >= self.duration:
                raise ValueError("narration.offsetS must be less than the scene's duration")
            if self.caption is not None and self.caption.cues and self.caption.cues[-1].end_s > self.duration + 1e-9:
                k, cue = len(self.caption.cues) - 1, self.caption.cues[-1]
                raise ValueError(f"caption.cues[{k}]: ends at {cue.end_s:g} s, after the scene's duration "
                                 f"({self.duration:g} s): caption cues must end within the scene")
        return self


class Output(_Model):
    resolution: Literal["720p", "1080p"] = "1080p"
    aspect_ratio: Literal["16:9", "9:16", "1:1"] = "16:9"
    fps: Literal[24, 25, 30, 60] = 30
    quality: Literal["draft", "standard", "high"] = "standard"

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return FRAME_SIZES[(self.resolution, self.aspect_ratio)]


class Music(_Model):
    """A music bed under the whole video."""

    src: str
    volume: float = Field(0.25, ge=0, le=2)
    loop: bool = True
    ducking: bool = True
    fade_in_s: float = Field(0.0, ge=0, le=30)
    fade_out_s: float = Field(2.0, ge=0, le=30)

    _src = field_validator("src")(classmethod(_src_field))


class CaptionStyle(_Model):
    """How burned-in captions look. Lines wrap inside a safe area (90% of the width, 6% margins)."""

    font: str = Field("DejaVu Sans", pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$",
                      description="font family; the render image ships DejaVu and Noto (wide Unicode coverage), "
                                  "missing glyphs fall back through fontconfig")
    size_px: int | None = Field(None, ge=8, le=400, description="font size in pixels; null = frame height / 18")
    color: str = "#ffffff"
    outline_color: str = "#000000"
    outline_width: float | None = Field(None, ge=0, le=20, description="pixels; null = size / 16")
    position: Literal["bottom", "middle", "top"] = "bottom"

    _colors = field_validator("color", "outline_color")(classmethod(lambda cls, v: check_color(v)))


class Captions(_Model):
    burn_in: bool = True
    sidecar: list[Literal["srt", "vtt"]] = Field(default_factory=lambda: ["srt", "vtt"], max_length=2)

    @field_validator("sidecar")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("list each sidecar format once")
        return sorted(v)  # a set of kinds: one order, so equal specs dump and digest alike
    style: CaptionStyle = Field(default_factory=CaptionStyle)


class Audio(_Model):
    loudness_lufs: float = Field(-16.0, ge=-40, le=-5, description="integrated loudness target, LUFS")
    true_peak_db: float = Field(-1.5, ge=-9, le=0, description="true-peak ceiling, dBTP")


class Poster(_Model):
    """Which frame becomes the poster JPEG: the middle of a scene (0-based) or a time in seconds."""

    scene: int | None = Field(None, ge=0)
    time_s: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one(self) -> "Poster":
        if self.scene is not None and self.time_s is not None:
            raise ValueError("give either scene or timeS, not both")
        return self


class ExportSpec(_Model):
    """A storyboard to render. See DESIGN §5 and the published JSON Schema."""

    version: Literal[1] = 1
    title: str | None = Field(None, max_length=200)

    @field_validator("version", mode="before")
    @classmethod
    def _version_not_bool(cls, v: Any) -> Any:
        if isinstance(v, bool):  # JSON true equals 1 in Python; refuse it
            raise ValueError("must be the number 1")
        return v
    output: Output = Field(default_factory=Output)
    scenes: list[Scene] = Field(min_length=1, max_length=MAX_SCENES)
    music: Music | None = None
    captions: Captions = Field(default_factory=Captions)
    audio: Audio = Field(default_factory=Audio)
    poster: Poster = Field(default_factory=Poster)

    @model_validator(mode="after")
    def _cross_checks(self) -> "ExportSpec":
        seen: set[str] = set()
        problems: list[str] = []
        for i, scene in enumerate(self.scenes):
            if scene.id in seen:
                problems.append(f"scenes[{i}].id: duplicate scene id {scene.id!r}")
            seen.add(scene.id)
            if scene.visual.type == "color" and scene.duration is None and scene.narration is None:
                pass  # default duration applies
        if self.poster.scene is not None and self.poster.scene >= len(self.scenes):
            problems.append(f"poster.scene: is past the last scene (there are {len(self.scenes)})")
        problems += frame_problems(self.scenes, int(self.output.fps))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def asset_refs(self) -> list[AssetRef]:
        """Every media reference (shared.assets.AssetRef), in spec order: per scene its visual, then its
        narration; the music last."""
        refs: list[AssetRef] = []
        for i, s in enumerate(self.scenes):
            src = getattr(s.visual, "src", None)
            if src:
                refs.append(AssetRef(src, "visual", i, s.id, s.visual.type))
            if s.narration:
                refs.append(AssetRef(s.narration.src, "narration", i, s.id))
        if self.music:
            refs.append(AssetRef(self.music.src, "music"))
        return refs

    def bare_asset_names(self) -> list[str]:
        """Distinct bare names (uploaded for this job), in first-use order."""
        return list(dict.fromkeys(ref.src for ref in self.asset_refs() if ref.uploaded))


def parse_spec(data: Any) -> ExportSpec:
    """Validate a decoded JSON spec.

    Returns:
        ExportSpec.
    Raises:
        InvalidRequest: with `details` listing every problem at once as {path, message}.
    """
    if not isinstance(data, dict):
        raise InvalidRequest("spec must be a JSON object",
                             details=[{"path": "spec", "message": "must be a JSON object"}])
    problem = nonfinite_problem(data)  # NaN/Infinity, or a literal like 1e999 that decodes to inf
    if problem:
        raise InvalidRequest(f"spec contains a non-finite number at {problem['path']}", details=[problem])
    text = json.dumps(data, allow_nan=False)
    try:
        # strict JSON-mode validation: true/false are not numbers, "30" and "nan" are not numbers
        return ExportSpec.model_validate_json(text, strict=True)
    except ValidationError as exc:
        details = errors_to_details(exc)
    # a field error stops pydantic before ExportSpec's checks across scenes (frame counts, cues, ids,
    # poster): validate again without the asset-name check, so a bad name does not hide those
    try:
        ExportSpec.model_validate_json(text, strict=True, context={_NAMES_APART: True})
    except ValidationError as exc:
        seen = {(d["path"], d["message"]) for d in details}  # a set: a list search is quadratic
        details += [d for d in errors_to_details(exc) if (d["path"], d["message"]) not in seen]
    raise InvalidRequest(f"spec is invalid: {len(details)} problem(s)", details=details) from None


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of ExportSpec, by alias (camelCase)."""
    schema = ExportSpec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://sceneflow.example/schemas/export_spec_v1.schema.json"
    return schema
