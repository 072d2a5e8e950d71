"""The FFmpeg filter graph and argv of a render (pure: no I/O, no subprocess; imports only
render_job.plan and the standard library).

One FFmpeg run renders the whole export through a single -filter_complex graph; a storyboard of
more than RENDER_SEGMENT_SCENES scenes has its video timeline rendered in segments, each an FFmpeg
run writing raw frames into the one encoding run's stdin (timeline.segment_cuts,
command.build_command(video_pipe=True)). An export at or over RENDER_PARALLEL_AFTER_S is encoded
in scene chunks instead (parts.build_part_command per chunk, parts.build_join_command;
render_job.part_render). Where each part lives:

    visuals    fit (cover = crop+scale, contain = scale+pad, blur = contain over a blurred cover),
               Ken Burns motion (still pans and zooms from a copy scaled ONCE, `perspective` for clips)
    scenes     one scene's input and chain (image | clip | colour or title card) -> [v<i>]
    timeline   transitions as short xfade segments and ONE concat -> [tl]; segment cuts and the
               per-scene memory estimates that place them
    audio      narration, clip sound and ducked music mixed, then loudnorm -> [aout]
    captions   the pre-rendered caption overlay or the `subtitles` burn-in over [tl] -> [vout]
    command    argv assembly: the render, a segment, the poster, a long graph moved into a file
    common     fmt_s (seconds as FFmpeg text)

Run the commands with cwd = the work directory holding `captions.ass`, `fonts/` and the files of
visuals.command_files(plan); file names are relative to it, so no caption text and no
user-controlled path ever enters the graph or argv. Local input paths must not contain '%' (the
image2 demuxer treats it as a sequence pattern): render_job.preflight names downloaded assets itself.
"""
