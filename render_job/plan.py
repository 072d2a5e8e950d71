"""The render plan: when each scene, transition, narration and caption happens (pure: no I/O).

All times are seconds from the start of the output. Every scene boundary is placed on the frame
grid of the output frame rate from the exact cumulative time (shared.timeline), so scene starts,
xfade offsets and the total land on frames and rounding never accumulates:

- a scene whose length comes from its narration is rounded UP to a whole frame (narration never cut:
  a whole-frame duration keeps exactly its frames wherever it starts);
- an explicit or clip-derived duration is used exactly (a clip lasts at least MIN_SCENE_FRAMES frames;
  the spec refuses shorter explicit durations);
- a transition is clamped to half of the shorter neighbouring scene (exact seconds).

Timeline rules (scene i has duration D_i and transition t_i into scene i+1; t of the last scene is 0):
    S_0 = 0,  S_i = sum_{k<i} (D_k - t_k),  total = sum D - sum t,
each S_i and S_i + D_i rounded to the nearest frame; the total is within half a frame of the formula.
Caption cue i spans [S_i, S_{i+1}) (the last one ends at total), so cues never overlap. Explicit
cues are placed at S_i + startS .. S_i + endS and cut where the next scene starts (S_{i+1}); a cue
left shorter than one frame is not shown and is reported in RenderPlan.warnings.
Narration i starts at S_i + offsetS.
A title card (visual type "title") is a colour scene plus a TitleCard text event over [S_i, S_i + D_i),
fading in and out over its transitions (burned in through the same ASS file as the captions).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Mapping

from shared.spec import ExportSpec
from shared.timeline import cue_problem, cue_span, frame_grid, scene_length, transition_lengths

from render_job.clips import clip_preroll_s, clip_sound_in_window

NARRATION_CUT_FADE_S = 0.05   # fade-out applied when a narration is cut at an explicit scene end


@dataclass(frozen=True)
class ScenePlan:
    """One scene on the timeline. Times in seconds.

    kind: "image" | "video" | "color" | "title". src: the spec's src (None for colour and title).
    color: "#rrggbb" (the colour, or a title card's background). fit: cover | contain | blur.
    motion: none | zoom-in | zoom-out | pan-left | pan-right | pan-up | pan-down, motion_strength the
    fraction of the frame zoomed or panned over the scene. clip_volume: linear gain of a clip's own
    audio, clip_audio: whether it is mixed (volume > 0, the clip has an audio stream, and its sound
    reaches the part read: clip_sound_in_window).
    start/duration/end: placement on the output timeline. transition: xfade name or "cut" into the
    next scene, transition_s its (clamped) duration (0 for cut and for the last scene).
    trim_start_s: where a clip is read from; clip_s: seconds of clip available after trimming
    (None for stills/colour); clip_pad_s: seconds of freeze-frame padding needed (clip too short).
    clip_offset_s: seconds from the start of a clip's file to its first picture (its sound may start
    earlier); clip_seek_s = clip_offset_s + trim_start_s is where the clip is read from, on the file's
    timeline, its sound with it. clip_preroll_s: seconds the file is opened before clip_seek_s (its
    container seeks to keyframes after the point: render_job.clips), at most trim_start_s. deinterlace: the clip is
    interlaced (render_job.probe).
    narration_*: narration src, gain (linear), length (seconds), offset after the scene start
    (seconds), and whether it is cut at the scene end (narration_cut_s = the cut length, or None).
    """

    index: int
    id: str
    kind: str
    src: str | None
    color: str | None
    fit: str
    start: float
    duration: float
    transition: str
    transition_s: float
    trim_start_s: float = 0.0
    clip_s: float | None = None
    narration_src: str | None = None
    narration_volume: float = 1.0
    narration_s: float | None = None
    narration_cut_s: float | None = None
    caption: str | None = None
    motion: str = "none"
    motion_strength: float = 0.0
    clip_volume: float = 0.0
    clip_audio: bool = False
    narration_offset_s: float = 0.0
    src_pixels: int = 0  # a clip's frame or a still's size as FFmpeg decodes it, width x height pixels (0: unknown)
    clip_offset_s: float = 0.0
    deinterlace: bool = False
    clip_preroll_s: float = 0.0

    @property
    def clip_seek_s(self) -> float:
        """Seconds from the start of a clip's file (its earliest stream) to the first picture shown."""
        return self.clip_offset_s + self.trim_start_s

    @property
    def end(self) -> float:
        """start + duration (seconds)."""
        return self.start + self.duration

    @property
    def clip_pad_s(self) -> float:
        """Freeze-frame padding needed at the end of a clip (seconds, >= 0)."""
        if self.kind != "video" or self.clip_s is None:
            return 0.0
        return max(0.0, self.duration - self.clip_s)


@dataclass(frozen=True)
class Cue:
    """A caption cue: [start, end) in seconds, and its literal text (no markup); path: the spec field
    it comes from ("scenes[i].caption.text" or "scenes[i].caption.cues[k]"), for warnings."""

    start: float
    end: float
    text: str
    path: str = ""


@dataclass(frozen=True)
class TitleCard:
    """Title-card text shown over [start, end) seconds, fading in/out over fade_in/fade_out seconds;
    path: its spec field ("scenes[i].visual.text"), for warnings."""

    start: float
    end: float
    text: str
    color: str
    fade_in: float = 0.0
    fade_out: float = 0.0
    path: str = ""


@dataclass(frozen=True)
class CaptionStylePlan:
    """Caption look: font family, size_px (pixels), colours "#rrggbb", outline_width (pixels),
    position bottom | middle | top."""

    font: str = "DejaVu Sans"
    size_px: int = 40
    color: str = "#ffffff"
    outline_color: str = "#000000"
    outline_width: float = 2.5
    position: str = "bottom"


@dataclass(frozen=True)
class MusicPlan:
    """The music bed. volume linear; fades in seconds; loop repeats the file until `total`."""

    src: str
    volume: float
    loop: bool
    ducking: bool
    fade_in_s: float
    fade_out_s: float


@dataclass(frozen=True)
class RenderPlan:
    """Everything graph.command.build_command needs. width/height pixels, fps frames/s, times in seconds,
    loudness_lufs integrated loudness target (LUFS), true_peak_db (dBTP)."""

    width: int
    height: int
    fps: int
    quality: str
    scenes: tuple[ScenePlan, ...]
    cues: tuple[Cue, ...]
    total_s: float
    poster_s: float
    music: MusicPlan | None
    loudness_lufs: float
    true_peak_db: float
    burn_in: bool
    sidecars: tuple[str, ...]
    title: str | None = None
    caption_style: CaptionStylePlan = CaptionStylePlan()
    titles: tuple[TitleCard, ...] = ()
    warnings: tuple[tuple[str, str], ...] = ()  # (path, message): spec parts that will not show

    @property
    def starts(self) -> list[float]:
        """Scene start times (seconds)."""
        return [s.start for s in self.scenes]

    @property
    def has_audio(self) -> bool:
        """True when any narration, clip audio or music is present."""
        return self.music is not None or any(s.narration_src or s.clip_audio for s in self.scenes)


def _get(info: Any, name: str) -> Any:
    if info is None:
        return None
    value = getattr(info, name, None)
    if value is None and isinstance(info, Mapping):
        value = info.get(name)
    return value


def _dur(info: Any) -> float | None:
    d = _get(info, "duration_s")
    return float(d) if d is not None else None


def clip_offset_s(info: Any) -> float:
    """Seconds from the start of a clip's file (MediaInfo.start_s, its earliest stream) to its first
    picture (video_start_s): > 0 when the sound starts first (camera MOV/MP4 edit lists, AAC priming).
    trimStartS counts from the first picture, so the clip is read from start + offset + trim; 0 when
    the probe does not say."""
    video, start = _get(info, "video_start_s"), _get(info, "start_s")
    if video is None or start is None:
        return 0.0
    return max(0.0, float(video) - float(start))


def build_plan(spec: ExportSpec, probes: Mapping[str, Any]) -> RenderPlan:
    """Lay out `spec` on a timeline.

    Args:
        spec: a validated ExportSpec.
        probes: {src: MediaInfo-like}, an object (or mapping) with `duration_s` (seconds, or None for
            stills) for every narration and clip src the spec references.

    Scene duration D (seconds; shared.timeline.scene_length, the rule the API's length check shares):
        explicit `duration` if given; else narration offsetS + length + NARRATION_PAUSE_S rounded up to
        a whole frame; else, for a clip, its length after trimming (trimEndS or the clip's end,
        minus trimStartS; at least MIN_SCENE_FRAMES frames); else
        DEFAULT_SCENE_S (also for colour and title cards). A clip's length is that of its picture
        (video stream, MediaInfo.video_duration_s): sound running past the last picture is cut.
        Narration (from its offset) longer than an explicit duration: the duration is kept and the
        narration is cut at the scene's end with a NARRATION_CUT_FADE_S (50 ms) fade-out. A clip
        shorter than D is padded by freezing its last frame. A clip's own audio is mixed when its
        volume > 0 and its probe says `has_audio`; trimStartS counts from the clip's first picture
        (clip_offset_s), and the sound keeps its place against the picture (render_job.graph.audio).
        An interlaced clip (probe `interlaced`) is deinterlaced.
    Transitions: clamped so one never exceeds half of either neighbouring scene (so no scene is
        ever dropped); `cut` or a 0 s duration joins the scenes directly; the last scene's
        transition is ignored.
    Captions: a scene's `text` spans [S_i, S_{i+1}); its explicit cues span S_i + startS .. S_i + endS,
        cut at S_{i+1}; a cue left shorter than one frame is not shown: RenderPlan.warnings gets
        ("scenes[i].caption.cues[k]", why), and ("captions", ...) when the spec has captions but no
        cue is left.
    Frames: every boundary on the frame grid from the exact cumulative time (shared.timeline).
    Title cards: a TitleCard over [S_i, S_i + D_i), fading in/out over the neighbouring transitions.
    Poster time: middle of `poster.scene`; else `poster.timeS` clamped to [0, total - 1 frame];
        else the middle of scene 0.

    Returns:
        RenderPlan.
    Raises:
        ValueError: a narration or clip src has no probe (a programming error: probe first).
    """
    fps = int(spec.output.fps)
    width, height = spec.output.size
    n = len(spec.scenes)

    durations: list[Fraction] = []
    meta: list[dict[str, Any]] = []
    for scene in spec.scenes:
        vis = scene.visual
        m: dict[str, Any] = {"trim": 0.0, "clip_s": None, "narr_s": None, "clip_audio": False,
                             "offset": float(scene.narration.offset_s) if scene.narration else 0.0}
        if scene.narration is not None:
            if scene.narration.src not in probes:
                raise ValueError(f"no probe for narration {scene.narration.src!r}")
            m["narr_s"] = _dur(probes[scene.narration.src]) or 0.0
        if vis.type == "image" and vis.src in probes:  # the file FFmpeg reads (a normalised copy's size)
            m["src_pixels"] = int(_get(probes[vis.src], "width") or 0) * int(_get(probes[vis.src], "height") or 0)
        if vis.type == "video":
            if vis.src not in probes:
                raise ValueError(f"no probe for clip {vis.src!r}")
            # a clip shows its picture: sound running past the last picture is not part of it
            info = probes[vis.src]
            clip_len = _get(info, "video_duration_s") or _dur(info) or 0.0
            end = min(vis.trim_end_s, clip_len) if vis.trim_end_s is not None else clip_len
            m["trim"] = float(vis.trim_start_s)
            m["clip_s"] = max(0.0, end - vis.trim_start_s)
            m["clip_audio"] = vis.volume > 0 and bool(_get(probes[vis.src], "has_audio"))
            m["src_pixels"] = int(_get(info, "width") or 0) * int(_get(info, "height") or 0)
            m["offset_s"] = clip_offset_s(info)
            m["deinterlace"] = bool(_get(info, "interlaced"))
            # never opened before the first picture: in MPEG-TS/PS FFmpeg then times the file from its
            # picture when its earlier sound is unused (a muted clip was cut one frame late)
            m["preroll_s"] = clip_preroll_s(info, m["trim"])
        length = scene_length(scene, fps, narration_s=m["narr_s"], clip_s=m["clip_s"])
        assert length is not None  # every probe a length depends on is given
        durations.append(length)
        meta.append(m)

    # transitions clamped to half of the shorter neighbour, then every boundary on the frame grid
    trans_s = transition_lengths(spec.scenes, durations)
    names = [scene.transition.type if t > 0 else "cut" for scene, t in zip(spec.scenes, trans_s)]
    grid = frame_grid(durations, trans_s, fps)
    frames, t_frames = grid.frames, grid.transitions

    scenes: list[ScenePlan] = []
    silent: list[tuple[str, str]] = []  # clips whose sound has nothing in the part read
    for i, scene in enumerate(spec.scenes):
        D = frames[i] / fps
        m = meta[i]
        narr_cut = None
        narr_src = scene.narration.src if scene.narration else None
        if scene.narration is not None and m["offset"] + m["narr_s"] > D:
            narr_cut = D - m["offset"]
            if narr_cut < 1.0 / fps:  # starts at or after the scene's end: nothing of it is heard
                narr_src, narr_cut = None, None
        vis = scene.visual
        read_s = min(float(D), m["clip_s"]) if m["clip_s"] else float(D)
        if m["clip_audio"] and not clip_sound_in_window(probes[vis.src], m["trim"], read_s):
            m["clip_audio"] = False  # nothing of the sound is in the part shown: the clip is silent here
            silent.append((f"scenes[{i}].visual", "the clip has no sound in the part shown (from trimStartS "
                                                  "on): the scene has no clip sound"))
        caption = scene.caption.text if scene.caption and scene.caption.text is not None else None
        scenes.append(ScenePlan(
            index=i, id=scene.id, kind=scene.visual.type,
            src=getattr(vis, "src", None),
            color=vis.background if vis.type == "title" else getattr(vis, "color", None),
            fit=getattr(vis, "fit", "cover"),
            start=grid.starts[i] / fps, duration=D,
            transition=names[i] if t_frames[i] > 0 else "cut",
            transition_s=t_frames[i] / fps,
            trim_start_s=m["trim"], clip_s=m["clip_s"],
            narration_src=narr_src,
            narration_volume=float(scene.narration.volume) if scene.narration else 1.0,
            narration_s=m["narr_s"], narration_cut_s=narr_cut,
            caption=caption,
            motion=getattr(vis, "motion", "none"),
            motion_strength=float(getattr(vis, "motion_strength", 0.0)),
            clip_volume=float(getattr(vis, "volume", 0.0)), clip_audio=m["clip_audio"],
            narration_offset_s=m["offset"], src_pixels=m.get("src_pixels", 0),
            clip_offset_s=m.get("offset_s", 0.0), deinterlace=m.get("deinterlace", False),
            clip_preroll_s=m.get("preroll_s", 0.0),
        ))
    total_f = grid.total
    total = total_f / fps

    cues: list[Cue] = []
    titles: list[TitleCard] = []
    warnings: list[tuple[str, str]] = []
    for i, sp in enumerate(scenes):
        limit = scenes[i + 1].start if i + 1 < n else total
        cap = spec.scenes[i].caption
        if sp.caption:
            cues.append(Cue(start=sp.start, end=limit, text=sp.caption,
                            path=f"scenes[{i}].caption.text"))
        elif cap is not None and cap.cues:
            window = ((grid.starts[i + 1] if i + 1 < n else total_f) - grid.starts[i]) / fps
            for k, c in enumerate(cap.cues):
                span = cue_span(window, c.start_s, c.end_s, fps)
                if span is None:
                    warnings.append((f"scenes[{i}].caption.cues[{k}]",
                                     cue_problem(window, c.start_s, c.end_s, fps) or "not shown"))
                else:
                    cues.append(Cue(start=sp.start + span[0], end=sp.start + span[1], text=c.text,
                                    path=f"scenes[{i}].caption.cues[{k}]"))
        vis = spec.scenes[i].visual
        if vis.type == "title":
            titles.append(TitleCard(start=sp.start, end=sp.end, text=vis.text, color=vis.text_color,
                                    fade_in=scenes[i - 1].transition_s if i > 0 else 0.0,
                                    fade_out=sp.transition_s, path=f"scenes[{i}].visual.text"))

    last_frame = max(0.0, (total_f - 1) / fps)
    if spec.poster.scene is not None:
        ps = scenes[min(spec.poster.scene, n - 1)]
        poster = ps.start + ps.duration / 2
    elif spec.poster.time_s is not None:
        poster = min(max(0.0, float(spec.poster.time_s)), last_frame)
    else:
        poster = scenes[0].start + scenes[0].duration / 2
    poster = min(poster, last_frame)

    music = None
    if spec.music is not None:
        mu = spec.music
        music = MusicPlan(src=mu.src, volume=float(mu.volume), loop=bool(mu.loop), ducking=bool(mu.ducking),
                          fade_in_s=min(float(mu.fade_in_s), total), fade_out_s=min(float(mu.fade_out_s), total))

    return RenderPlan(
        width=width, height=height, fps=fps, quality=spec.output.quality,
        scenes=tuple(scenes), cues=tuple(cues), total_s=total, poster_s=poster, music=music,
        loudness_lufs=float(spec.audio.loudness_lufs), true_peak_db=float(spec.audio.true_peak_db),
        burn_in=bool(spec.captions.burn_in), sidecars=tuple(spec.captions.sidecar), title=spec.title,
        caption_style=_caption_style(spec, height), titles=tuple(titles),
        warnings=tuple(silent) + tuple(warnings) + _empty_track(spec, cues),
    )


def _empty_track(spec: ExportSpec, cues: list[Cue]) -> tuple[tuple[str, str], ...]:
    """A warning when the spec has captions but none of them is left to show."""
    if cues or not any(s.caption is not None for s in spec.scenes):
        return ()
    return (("captions", "no caption cue is left to show: nothing is burned in and no SRT/VTT "
                         "file is written"),)


def _caption_style(spec: ExportSpec, height: int) -> CaptionStylePlan:
    st = spec.captions.style
    size = int(st.size_px) if st.size_px is not None else max(12, round(height / 18))
    outline = float(st.outline_width) if st.outline_width is not None else max(1.0, round(size / 16, 1))
    return CaptionStylePlan(font=st.font, size_px=size, color=st.color, outline_color=st.outline_color,
                            outline_width=outline, position=st.position)
