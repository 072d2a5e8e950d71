"""The content type a client of ours declares for each upload (infra.local.client, examples/demo.py).

export_start accepts `(image|audio|video)/<subtype>` and checks the major type against the field that
uses the file (shared.api._upload_kinds: an image visual needs image/*, a clip video/*, narration
and music audio/* or video/*); the render job reads the bytes with FFmpeg whatever the declaration.
So the type comes from a built-in table of media extensions (the host's /etc/mime.types calls `.ts`
Qt Linguist, `.3gp` audio and knows no `.tga`, `.qoi` or `.m2ts`), the host's guess only for
extensions not in it; a container of sound or picture takes the major type of its role, an unknown
extension `<role>/x-<ext>`, and a known type that fits no role is kept (the API refuses it by name).
Pure: no I/O.
"""
from __future__ import annotations

import mimetypes
import re
from pathlib import PurePath
from typing import Iterable, Mapping

_VIDEO = {"ts": "mp2t", "mts": "mp2t", "m2ts": "mp2t", "3gp": "3gpp", "3g2": "3gpp2", "mkv": "x-matroska",
          "webm": "webm", "avi": "x-msvideo", "mov": "quicktime", "mp4": "mp4", "m4v": "x-m4v", "mpg": "mpeg",
          "mpeg": "mpeg", "flv": "x-flv", "wmv": "x-ms-wmv", "ogv": "ogg"}
_IMAGE = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "gif": "gif", "webp": "webp", "tif": "tiff",
          "tiff": "tiff", "bmp": "bmp", "tga": "x-tga", "qoi": "x-qoi", "jp2": "jp2", "avif": "avif",
          "ppm": "x-portable-pixmap", "ico": "vnd.microsoft.icon", "svg": "svg+xml"}  # svg: the API names it
_AUDIO = {"wav": "wav", "mp3": "mpeg", "m4a": "mp4", "aac": "aac", "ogg": "ogg", "oga": "ogg", "opus": "ogg",
          "flac": "flac", "aif": "aiff", "aiff": "aiff", "wma": "x-ms-wma", "weba": "webm", "mka": "x-matroska",
          "ac3": "ac3", "amr": "amr", "caf": "x-caf"}
# extension (lower case, no dot) -> media type
MEDIA_TYPES: dict[str, str] = {**{e: f"video/{s}" for e, s in _VIDEO.items()},
                               **{e: f"image/{s}" for e, s in _IMAGE.items()},
                               **{e: f"audio/{s}" for e, s in _AUDIO.items()}}

# containers that hold sound, picture or both: declared with the major type of the role that uses them
_AV_CONTAINERS = frozenset({"ogg", "oga", "ogv", "opus", "webm", "weba", "mkv", "mka", "mp4", "m4a", "m4v", "mov",
                            "3gp", "3g2"})

_KINDS_BY_VISUAL = {"image": ("image",), "video": ("video",)}
_SOUND = ("audio", "video")  # narration and music: a clip's sound track is fine too
_SUBTYPE_CHARS = re.compile(r"[^A-Za-z0-9.+-]")


def role_kinds(spec: object) -> dict[str, tuple[str, ...]]:
    """{src: the major types every field using it accepts} for each string `src` of a visual,
    narration or music in `spec` (decoded JSON, possibly malformed: what is not a dict is skipped).
    A file used in two roles gets the types both accept (a clip as visual and narration: video);
    () when none fits both (the API then names the field)."""
    kinds: dict[str, tuple[str, ...]] = {}

    def use(src: object, accepted: tuple[str, ...]) -> None:
        if isinstance(src, str):
            kinds[src] = tuple(k for k in kinds[src] if k in accepted) if src in kinds else accepted

    def get(obj: object, key: str) -> object:
        return obj.get(key) if isinstance(obj, dict) else None

    scenes = get(spec, "scenes")
    for scene in scenes if isinstance(scenes, list) else []:
        visual = get(scene, "visual")
        if get(visual, "type") in _KINDS_BY_VISUAL:
            use(get(visual, "src"), _KINDS_BY_VISUAL[get(visual, "type")])
        use(get(get(scene, "narration"), "src"), _SOUND)
    use(get(get(spec, "music"), "src"), _SOUND)
    return kinds


def guess_type(name: str) -> str | None:
    """The media type of a file called `name`: MEDIA_TYPES by its extension, else the host's
    mimetypes guess, else None."""
    ext = PurePath(name).suffix.lower().lstrip(".")
    return MEDIA_TYPES.get(ext) or mimetypes.guess_type(name, strict=False)[0]


def content_type(name: str, kinds: tuple[str, ...] = ()) -> str:
    """The type to declare for upload `name` used where `kinds` (major types, preferred first) are
    accepted: guess_type when its major type is one of them (or `kinds` is empty); for a container
    that holds sound or picture (ogg, webm, mp4, ...) its subtype under `kinds[0]`; a type the table
    knows otherwise is kept, so that the API refuses it naming the file (a PNG as narration); an
    unknown extension gets `<kinds[0]>/x-<extension>` (`x-unknown` without one);
    application/octet-stream when nothing is known (the API refuses it naming the upload)."""
    guessed = guess_type(name)
    if not kinds or (guessed and guessed.split("/", 1)[0] in kinds):
        return guessed or "application/octet-stream"
    ext = _SUBTYPE_CHARS.sub("", PurePath(name).suffix.lstrip("."))[:50].lower()
    if ext in _AV_CONTAINERS:
        return f"{kinds[0]}/{MEDIA_TYPES[ext].split('/', 1)[1]}"
    if ext in MEDIA_TYPES:
        return MEDIA_TYPES[ext]
    return f"{kinds[0]}/x-{ext or 'unknown'}"


def upload_types(spec: object, names: Iterable[str], overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """{name: content type} for each upload: `overrides[name]` when given (sent as it is), else
    content_type(name, its role in `spec`). Raises ValueError naming an override for a file that is
    not among `names`."""
    names = list(names)
    overrides = dict(overrides or {})
    unknown = [n for n in overrides if n not in names]
    if unknown:
        shown = ", ".join(map(repr, names[:10])) + (", ..." if len(names) > 10 else "")
        raise ValueError(f"--content-type names {', '.join(map(repr, unknown))}: not a file the storyboard "
                         f"uploads ({shown or 'it uploads none'})")
    kinds = role_kinds(spec)  # narration/music list audio first: an unknown sound is audio/x-<ext>
    return {n: overrides.get(n) or content_type(n, kinds.get(n, ())) for n in names}


def parse_override(text: str) -> tuple[str, str]:
    """`NAME=TYPE` (the demo's --content-type option) as (NAME, TYPE). Raises ValueError when either
    side is empty or there is no '='."""
    name, sep, ctype = text.partition("=")
    if not sep or not name or not ctype.strip():
        raise ValueError(f"--content-type {text!r}: expected NAME=TYPE, e.g. clip.ts=video/mp2t")
    return name, ctype.strip()
