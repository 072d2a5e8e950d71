"""README's "Export spec v1" table against the JSON Schema: every field listed once, the required
column and the defaults as the model has them, the asset-name rule quoted as the API applies it."""
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared.spec import json_schema  # noqa: E402

README = (ROOT / "README.md").read_text(encoding="utf-8")


def schema_fields() -> dict[str, dict]:
    """{path: {"required": bool, "default": value (absent when the schema gives none)}} for every
    field, `[]` marking list items; the four visual types share one set of paths."""
    schema = json_schema()
    defs = schema.get("$defs", {})
    out: dict[str, dict] = {}

    def walk(node: dict, prefix: str) -> None:
        if "$ref" in node:
            return walk(defs[node["$ref"].rsplit("/", 1)[-1]], prefix)
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in node.get(key, []):
                walk(sub, prefix)
        if node.get("type") == "array" and isinstance(node.get("items"), dict):
            walk(node["items"], prefix + "[]")
        required = set(node.get("required", []))
        for name, sub in (node.get("properties") or {}).items():
            path = f"{prefix}.{name}" if prefix else name
            entry = out.setdefault(path, {"required": name in required})
            # a field required in one visual type is required there; the README says which type
            entry["required"] = entry["required"] or name in required
            if "default" in sub:
                entry.setdefault("default", sub["default"])
            walk(sub, path)

    walk(schema, "")
    return out


def readme_rows() -> dict[str, list[str]]:
    """{field path: [required cell, default cell, meaning cell]} from the spec table."""
    section = README[README.index("## Export spec v1"):]
    section = section[:section.index("\n## ", 1)]
    header = "| field | required | default | meaning (units) |"
    assert header in section, "the spec table's header changed"
    rows: dict[str, list[str]] = {}
    for line in section[section.index(header):].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        names = re.findall(r"`([^`]+)`", cells[0])
        assert len(names) == 1, f"one field per row: {line[:80]}"
        assert names[0] not in rows, f"{names[0]} listed twice"
        rows[names[0]] = cells[1:]
    return rows


def test_readme_table_lists_every_schema_field_and_nothing_else():
    fields, rows = schema_fields(), readme_rows()
    assert len(fields) > 50
    assert sorted(set(fields) - set(rows)) == [], "fields missing from the README table"
    assert sorted(set(rows) - set(fields)) == [], "README lists fields the schema does not have"


def test_readme_required_column_matches_schema():
    fields, rows = schema_fields(), readme_rows()
    said = {path for path, (req, _, _) in rows.items() if req.startswith("**yes**")}
    assert said == {p for p, f in fields.items() if f["required"]}
    assert {"scenes", "scenes[].id", "scenes[].visual", "scenes[].visual.type"} <= said
    assert "version" not in said and "title" not in said
    for path, (req, _, _) in rows.items():
        assert req.startswith("**yes**") or req.startswith("no"), (path, req)


def test_readme_defaults_match_schema():
    fields, rows = schema_fields(), readme_rows()
    for path, field in fields.items():
        if "default" not in field:
            continue
        shown = re.findall(r"`([^`]+)`", rows[path][1])
        assert shown, f"{path}: README gives no default, the schema says {field['default']!r}"
        assert json.loads(shown[0]) == field["default"], (path, shown[0], field["default"])


def test_readme_states_the_asset_name_rule_and_profiles():
    from shared.assets import ASSET_NAME_RULE

    text = " ".join(README.split())
    assert ASSET_NAME_RULE in text
    quality = readme_rows()["output.quality"][2]
    for preset, profile in (("ultrafast", "Constrained Baseline"), ("veryfast", "High"), ("medium", "High")):
        assert re.search(rf"{preset}, CRF \d+: H\.264 \*\*{profile}\*\*", quality), preset


def test_readme_lists_exactly_the_accepted_transition_types():
    # trial 2: "… 36 in all" without the list let users pick FFmpeg names the spec refused
    from shared.spec import XFADE_TRANSITIONS

    cell = readme_rows()["scenes[].transition.type"][2]
    assert cell.startswith("`cut`, or one of FFmpeg's named xfade transitions")
    listed = re.findall(r"`([^`]+)`", cell.split("): ", 1)[1])
    assert listed == list(XFADE_TRANSITIONS)
    assert f"all {len(XFADE_TRANSITIONS)}," in cell


def test_motion_strength_row_says_a_pan_moves_over_the_fitted_frame_and_quotes_its_example_right():
    # trial 4: "15 % of the picture's height" read as the picture's own height; a tall scan cannot
    # be panned top to bottom because `cover` crops it to the frame first (render_job/graph/visuals.py)
    from render_job.graph.visuals import _fit_filters, pan_filters
    from render_job.plan import ScenePlan

    meaning = readme_rows()["scenes[].visual.motionStrength"][2]
    assert "fraction of the fitted frame" in meaning
    assert "cropped to its middle by `cover` before it is panned" in meaning
    w, h, s, frames = 1920, 1080, 0.5, 151
    scene = ScenePlan(index=0, id="scan", kind="image", src="scan.png", color=None, fit="cover", start=0.0,
                      duration=5.0, transition="cut", transition_s=0.0, motion="pan-down", motion_strength=s)
    # the fit crops the picture to the frame's shape and scales it to w x h: the pan only sees that frame
    assert _fit_filters(scene, w, h).startswith(f"crop='min(iw,ih*{w}/{h})':'min(ih,iw*{h}/{w})',scale={w}:{h}:")
    once, per_frame = pan_filters(scene, w, h, frames)
    copy_h = int(re.search(r"scale=\d+:(\d+):", once).group(1))     # the fitted frame, scaled k/(1-s)
    travel = int(re.search(r"y='(\d+)-\d+\*n'", per_frame).group(1))  # copy pixels moved in all
    assert abs(travel / copy_h - s) < 0.01                              # s of the fitted frame's height
    fitted_scan_h = 6000 * max(w / 1000, h / 6000)                     # 1000x6000 scan under cover
    assert f"shows the middle {h / fitted_scan_h * 100:.0f} % of its height" in meaning
    assert f"`pan-down` 0.5 moves over {s * h / fitted_scan_h * 100:.1f} % of it" in meaning


def test_the_states_line_says_where_a_job_without_uploads_starts():
    # trial 4: the demo's "states seen" began at queued for a storyboard of colour scenes only
    # (tests/integration/test_functions.py checks that such a job answers 202 "queued")
    flow = README[README.index("## The flow"):README.index("## HTTP API")]
    states = " ".join(flow[flow.index("\nStates: "):].split("\n\n")[0].split())
    assert "a job with nothing to upload starts at `queued`" in states, states
