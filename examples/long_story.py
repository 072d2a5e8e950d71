"""The long sample storyboard of `make demo-long` (issue 19): the sample media of examples/storyboard
made into a story over RENDER_PARALLEL_AFTER_S's default (120 s), so that the export renders in
parts (K part tasks + the audio task, then the stitch) with the default settings.

Every scene has an explicit duration (dispatch counts a scene without one at its least, so only
explicit durations make the planned length known before the render), a narration of the sample set
read to its end, a caption, Ken Burns motion; cuts and crossfades alternate; ducked music throughout.
720p keeps the render short on a small machine (the spec's own `output.resolution`).
"""
from __future__ import annotations

# (picture, narration, its length in seconds rounded up, caption): the sample storyboard's six scenes
SCENES = [
    ("astronaut.png", "n1.wav", 6.0, "In 1995, Eileen Collins became the first woman to pilot the space shuttle."),
    ("rocket.jpg", "n2.mp3", 8.0, "Every launch begins long before ignition: months of checks and rehearsals."),
    ("hubble_deep_field.jpg", "n3.wav", 9.5, "The Hubble deep field reveals thousands of galaxies."),
    ("coffee.png", "n4.mp3", 5.0, "Back on Earth, the crew's day starts the way many of ours do: with coffee."),
    ("chelsea.png", "n5.wav", 3.5, "Mission control keeps a cat, of course."),
    ("camera.png", "n6.wav", 3.0, "The camera sees what we choose to remember."),
]
MOTIONS = ("zoom-in", "pan-left", "zoom-out", "pan-right")
PAUSE_S = 1.0  # each scene holds its picture this long after its narration
CROSSFADE_S = 0.5


def long_storyboard(rounds: int = 4) -> dict:
    """The spec (export spec v1) of `rounds` passes over the six sample scenes and a title card: 25
    scenes, 161 s at 720p30 for the default 4 (each scene its narration's length + PAUSE_S, a
    crossfade after every other scene): 16 part tasks told (RENDER_MAX_PARTS), 12 parts cut."""
    scenes = []
    for r in range(rounds):
        for i, (picture, narration, seconds, caption) in enumerate(SCENES):
            n = len(scenes)
            scene = {"id": f"r{r}s{i}",
                     "visual": {"type": "image", "src": picture, "fit": "cover" if picture != "chelsea.png" else "contain",
                                "motion": MOTIONS[n % len(MOTIONS)]},
                     "narration": {"src": narration},
                     "caption": {"text": f"{caption} ({r + 1}/{rounds})"},
                     "duration": seconds + PAUSE_S}
            scene["transition"] = {"type": "fade", "duration": CROSSFADE_S} if n % 2 == 0 else {"type": "cut"}
            scenes.append(scene)
    scenes[-1].pop("transition")
    scenes.append({"id": "end", "visual": {"type": "title", "text": "The end"}, "duration": 3.0})
    return {"version": 1, "title": "Moon mission, the long cut",
            "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": 30, "quality": "standard"},
            "scenes": scenes,
            "music": {"src": "music.ogg", "volume": 0.25, "loop": True, "ducking": True, "fadeOutS": 3},
            "captions": {"burnIn": True, "sidecar": ["srt", "vtt"]},
            "audio": {"loudnessLufs": -16},
            "poster": {"scene": 0}}
