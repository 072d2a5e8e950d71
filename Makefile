# SceneFlow Export — local tasks. Everything runs from .venv (created with python3.11 if missing).
#   make demo     render the sample storyboard with the embedded stack (./out/)
#   make demo-emulated  the same on PostgreSQL + Pub/Sub emulator + fake-gcs-server
#   make demo-long  a 161 s storyboard of the sample media: renders in parts (issue 19), shows them
#   make demo-web the example web page (examples/web/) on its own origin beside the embedded stack, until Ctrl-C;
#                 ARGS="--screenshot PATH": render the example in headless Chromium once, save the finished page
#   make test     unit + integration + system + browser tests
#   make unit / integration / system / browser  one tier of the tests (PYTEST_ARGS=... adds pytest options)
#   make image    build the render image (infra/Dockerfile) with podman or docker (IMAGE=name, IMAGE_BASE, IMAGE_CA)
#   make image-test  build it and render an export inside it, as Cloud Run would (podman; tests/image)
#   make reconcile  POST reconcile_exports of a running stack (API=http://127.0.0.1:PORT, default $$EXPORT_API_BASE)
#   make bench    render the benchmark storyboard, time ours vs FFmpeg/MoviePy (BENCHMARKS.md)
#   make bench-segments  memory of a 72-scene storyboard: one FFmpeg graph vs segmented renders
#   make bench-long  1, 10 and 30 minutes through the embedded stack: CPU, wall, memory, loudness, frames
#   make bench-parallel  a 10-minute storyboard: single task vs parts one at a time + stitch, projected speed-up for K tasks
#   make bench-audio  the parallel render's audio task on that storyboard: wall and CPU of each pass
#   make bench-chunks  a long export's single task in scene chunks vs one encoding run: wall, CPU, bytes
#   make bench-image  the render image before/after issue 16: size, podman run to first progress report (podman)
#   make schema   regenerate shared/schema/export_spec_v1.schema.json and the API's shared/schema/openapi.json
#   make load     API load test: 2,000 starts + 10,000 status reads vs a bare handler (RELIABILITY.md), then
#                 export_list on 100,000 jobs (BENCHMARKS.md "Listing"; LOAD_ARGS=--list-only runs that alone)
#   make clean    remove caches, ./out and .local/runs (keeps .venv)
#   make help     this list

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
STATUS_FILE ?=

.PHONY: all help install demo demo-emulated demo-long demo-web test unit integration system browser image image-test schema clean distclean reconcile

all: test

help:
	@sed -n '2,/^$$/{/^$$/q;s/^# \{0,3\}//;p}' $(firstword $(MAKEFILE_LIST))

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-install only when the requirement files change (the stamp records the last install).
$(STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

# A storyboard over RENDER_PARALLEL_AFTER_S (examples/long_story.py): K part tasks + the audio, then the stitch.
demo-long: $(STAMP)
	$(PY) examples/demo.py --long --out out/long

# The author's page in a browser (issue 20): the page's URL is printed; Chromium at /usr/bin/chromium for --screenshot.
# ARGS: --port N (the page's port), --screenshot PATH
ARGS ?=
demo-web: $(STAMP)
	$(PY) -m infra.local.web_page $(ARGS)

# The same demo on the emulated cloud: PostgreSQL, the gcloud Pub/Sub emulator (Java 17), fake-gcs-server.
demo-emulated: $(STAMP)
	$(PY) examples/demo.py --mode emulated

# STATUS_FILE=path records pytest's own exit status (make itself exits 2 on any failure).
test: $(STAMP)
	@s=0; $(PY) -m pytest tests $(PYTEST_ARGS) || s=$$?; \
	if [ -n "$(STATUS_FILE)" ]; then echo $$s > "$(STATUS_FILE)"; fi; exit $$s

# IMAGE_BASE: another python:3.11 base (e.g. a mirror's); IMAGE_CA: a CA bundle pip must trust
IMAGE ?= sceneflow-render:local
IMAGE_BASE ?=
IMAGE_CA ?=
image:
	infra/image.sh --tag $(IMAGE) $(if $(IMAGE_BASE),--base $(IMAGE_BASE)) $(if $(IMAGE_CA),--ca $(IMAGE_CA))

# The image tier (tests/image): builds the image with podman (on a local stand-in base when no
# registry answers) and runs exports inside it. Skipped by `make test`; CI runs it after.
image-test: $(STAMP)
	@s=0; SCENEFLOW_IMAGE_TESTS=1 $(PY) -m pytest tests/image --timeout=1800 $(PYTEST_ARGS) || s=$$?; \
	if [ -n "$(STATUS_FILE)" ]; then echo $$s > "$(STATUS_FILE)"; fi; exit $$s

unit: $(STAMP)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: $(STAMP)
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

system: $(STAMP)
	$(PY) -m pytest tests/system $(PYTEST_ARGS)

browser: $(STAMP)
	$(PY) -m pytest tests/browser $(PYTEST_ARGS)

# Benchmark (issue 4): installs requirements-bench.txt (MoviePy 2, psutil, rich; benchmark only) into
# the venv, then runs tests/bench/bench_render.py. BENCH_ARGS passes options, e.g. --skip-moviepy --profile.
BENCH_STAMP := $(VENV)/.bench-installed-stamp
BENCH_ARGS ?=
$(BENCH_STAMP): requirements-bench.txt requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-bench.txt
	@touch $(BENCH_STAMP)

.PHONY: bench bench-segments bench-long bench-image bench-parallel bench-audio bench-chunks
bench: $(STAMP) $(BENCH_STAMP)
	$(PY) tests/bench/bench_render.py $(BENCH_ARGS)

# Memory of a long storyboard (72 scenes): one FFmpeg graph against segmented renders (BENCHMARKS.md)
bench-segments: $(STAMP) $(BENCH_STAMP)
	$(PY) tests/bench/bench_segments.py $(BENCH_ARGS)

# Storyboards of 1, 10 and 30 minutes through the embedded stack (issue 15; BENCHMARKS.md, "Long storyboards").
# BENCH_ARGS="--lengths 1" for the short one only (the 30-minute one takes ~25-40 min on 2 cores).
bench-long: $(STAMP) $(BENCH_STAMP)
	$(PY) tests/bench/bench_long.py $(BENCH_ARGS)

# Parallel render (issue 19; BENCHMARKS.md, "Parallel render"): today's single task against the parts rendered
# one at a time, the audio once and the stitch, the local pipeline's overhead (a 1-minute export through it),
# projected to K = 4, 8, 16 Cloud Run tasks; docs/bench-parallel.png.
# BENCH_ARGS="--minutes 1" for a short run (10 minutes take ~25 min on 2 cores).
bench-parallel: $(STAMP) $(BENCH_STAMP)
	$(PY) tests/bench/bench_parallel.py $(BENCH_ARGS)

# The audio task alone on bench-parallel's storyboard (BENCHMARKS.md, "Audio mix cost"): each pass's wall and CPU.
bench-audio: $(STAMP) $(BENCH_STAMP)
	$(PY) tests/bench/bench_audio.py $(BENCH_ARGS)

# A long export's single task in scene chunks against one encoding run (BENCHMARKS.md, "Chunks").
bench-chunks: $(STAMP) $(BENCH_STAMP)
	$(PY) tests/bench/bench_chunks.py $(BENCH_ARGS)

# The render image of this tree against an older commit's (BENCH_ARGS="--before REF --runs N --publish")
bench-image: $(STAMP) $(BENCH_STAMP)
	$(PY) tests/bench/bench_image.py $(BENCH_ARGS)

schema: $(STAMP)
	@mkdir -p shared/schema
	$(PY) -c "import json; from shared.spec import json_schema; \
	open('shared/schema/export_spec_v1.schema.json', 'w').write(json.dumps(json_schema(), indent=2, ensure_ascii=False) + '\n')"
	@echo wrote shared/schema/export_spec_v1.schema.json
	$(PY) -c "from shared.openapi import DOCUMENT_PATH, render; open(DOCUMENT_PATH, 'w').write(render())"
	@echo wrote shared/schema/openapi.json

clean:
	rm -rf out .local/runs .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .local

# Local stand-in for Cloud Scheduler: one reconcile pass on a running stack (the gateway hosts the launcher).
API ?= $(EXPORT_API_BASE)
reconcile: $(STAMP)
	@test -n "$(API)" || { echo "usage: make reconcile API=http://127.0.0.1:PORT (the stack prints it)"; exit 2; }
	$(PY) -c "import requests, sys; r = requests.post('$(API)/reconcile_exports', timeout=60); print(r.status_code, r.text); sys.exit(r.status_code >= 300)"

# API load test on PostgreSQL + Pub/Sub emulator + fake-gcs-server (tests/load/load_test.py --help).
LOAD_ARGS ?=
.PHONY: load
load: $(STAMP)
	$(PY) tests/load/load_test.py $(LOAD_ARGS)
