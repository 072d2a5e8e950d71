// SceneFlow Export's example page: what an author's app does, in one module, no build step.
// Sign in (an ID token), choose a storyboard and its files, POST export_start, PUT every file to its
// signed URL with exactly the headers it came with, poll export_status (the stages as a history),
// then show the poster, play the MP4 and attach the WebVTT captions as a <track>.
// Shapes: shared/schema/openapi.json (StartRequest, StartResponse, UploadTarget, StatusResponse,
// ErrorResponse). Where things are (API base, issuer, token endpoint, the example) comes from the
// server's /config.json (infra/local/web_page.py): nothing here names a port.

const $ = (id) => document.getElementById(id);
const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const POLL_MS = 1000;
const UPLOADS_AT_ONCE = 3;
// media type by extension when the browser gives none (File.type ""); containers of sound or
// picture take the major type of the role that uses them, as infra/local/upload_types.py does
const TYPES = {png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif", webp: "image/webp",
  bmp: "image/bmp", tif: "image/tiff", tiff: "image/tiff", wav: "audio/wav", mp3: "audio/mpeg",
  m4a: "audio/mp4", aac: "audio/aac", flac: "audio/flac", ogg: "audio/ogg", opus: "audio/ogg",
  mp4: "video/mp4", mov: "video/quicktime", webm: "video/webm", mkv: "video/x-matroska", m4v: "video/x-m4v"};
const CONTAINERS = new Set(["ogg", "oga", "ogv", "opus", "webm", "weba", "mkv", "mka", "mp4", "m4a", "m4v", "mov"]);

// what the page knows; window.sceneflow lets a test read it (tests/browser)
const app = window.sceneflow = {config: null, token: null, author: null, spec: null, files: new Map(),
  jobId: null, status: null, stage: null, output: null, error: null, history: [], uploads: [],
  failedUploads: [], polls: 0};

function setStatus(status) {
  app.status = status;
  document.body.dataset.status = status;
}

function fieldErrors(problems) {
  // [{path, message}] (ErrorResponse.error.details, or the page's own checks) listed by field
  const list = $("field-errors");
  list.replaceChildren(...problems.map(({path, message}) => {
    const li = document.createElement("li");
    const code = document.createElement("code");
    code.textContent = path;
    li.append(code, `: ${message}`);
    return li;
  }));
}

function showError(field, message) {
  const el = document.querySelector(`.field-error[data-field="${field}"]`);
  if (el) el.textContent = message || "";
}

async function errorText(response) {
  // the documented error body {error: {code, message, details?}}, or the raw text of anything else
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && body.error && body.error.message) return {message: `${body.error.code}: ${body.error.message}`,
      details: Array.isArray(body.error.details) ? body.error.details : []};
  } catch (_) { /* not JSON: shown as is */ }
  return {message: `HTTP ${response.status}: ${text.slice(0, 300)}`, details: []};
}

// -- 1. sign in: the local issuer stand-in hands out an ID token (Firebase Auth's sign-in in the app)
async function signIn(event) {
  event.preventDefault();
  showError("sub", "");
  const sub = $("author").value.trim();
  try {
    const r = await fetch(app.config.tokenUrl, {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({sub})});
    if (!r.ok) return showError("sub", (await errorText(r)).message);
    app.token = (await r.json()).idToken;
    app.author = sub;
    $("signed-in").textContent = `signed in as ${sub}`;
  } catch (e) {
    showError("sub", `sign-in failed: ${e.message}`);
  }
  updateRender();
}

// -- 2. the storyboard and its files
function referencedFiles(spec) {
  // [{name, path, role}] of each bare file name a visual, narration or music uses, first use first
  const seen = new Map();
  const use = (src, path, role) => {
    if (typeof src === "string" && src && !src.includes("/") && !src.includes(":") && !seen.has(src)) {
      seen.set(src, {name: src, path, role});
    }
  };
  (Array.isArray(spec.scenes) ? spec.scenes : []).forEach((scene, i) => {
    if (!scene || typeof scene !== "object") return;
    if (scene.visual) use(scene.visual.src, `spec.scenes[${i}].visual.src`, scene.visual.type === "video" ? "video" : "image");
    if (scene.narration) use(scene.narration.src, `spec.scenes[${i}].narration.src`, "audio");
  });
  if (spec.music) use(spec.music.src, "spec.music.src", "audio");
  return [...seen.values()];
}

function contentType(file, name, role) {
  const ext = name.includes(".") ? name.split(".").pop().toLowerCase() : "";
  if (CONTAINERS.has(ext)) return `${role}/${(TYPES[ext] || `x/${ext}`).split("/")[1]}`;
  return file.type || TYPES[ext] || `${role}/x-${ext || "unknown"}`;
}

function listAssets() {
  const items = app.spec ? referencedFiles(app.spec) : [];
  $("asset-list").replaceChildren(...items.map(({name}) => {
    const li = document.createElement("li");
    li.id = `asset-${name}`;
    const file = app.files.get(name);
    li.textContent = file ? `${name} (${Math.round(file.size / 1024)} KB)` : `${name}: not chosen`;
    return li;
  }));
  $("chosen").textContent = app.spec ? `“${app.spec.title || "untitled"}”: ${app.spec.scenes?.length ?? 0} scenes, `
    + `${items.length} files` : "";
  updateRender();
}

async function chooseStoryboard() {
  showError("storyboard", "");
  const file = $("storyboard-file").files[0];
  if (!file) return;
  try {
    app.spec = JSON.parse(await file.text());
  } catch (e) {
    app.spec = null;
    showError("storyboard", `${file.name} is not JSON: ${e.message}`);
  }
  listAssets();
}

function chooseFiles() {
  for (const file of $("asset-files").files) app.files.set(file.name, file);
  listAssets();
}

async function useExample() {
  // the repo's examples/storyboard.json and examples/storyboard/*, from this page's own server
  showError("storyboard", "");
  try {
    const r = await fetch(app.config.storyboardUrl);
    if (!r.ok) throw new Error(`${app.config.storyboardUrl}: HTTP ${r.status}`);
    app.spec = await r.json();
    app.files.clear();
    await Promise.all(referencedFiles(app.spec).map(async ({name}) => {
      const a = await fetch(app.config.assetsBase + encodeURIComponent(name));
      if (!a.ok) throw new Error(`${name}: HTTP ${a.status}`);
      const blob = await a.blob();
      app.files.set(name, new File([blob], name, {type: blob.type}));
    }));
  } catch (e) {
    showError("storyboard", `the example could not be loaded: ${e.message}`);
  }
  listAssets();
}

function updateRender() {
  $("render").disabled = !(app.spec && (app.token || !app.config?.authRequired)) || app.jobId !== null;
}

// -- 3. start, upload, watch
function apiHeaders(extra = {}) {
  return app.token ? {Authorization: `Bearer ${app.token}`, ...extra} : extra;
}

async function render() {
  showError("$", "");
  fieldErrors([]);
  const files = referencedFiles(app.spec);
  const missing = files.filter(({name}) => !app.files.has(name));
  if (missing.length) {
    return fieldErrors(missing.map(({name, path}) => ({path, message: `${name} is not among the chosen files`})));
  }
  $("render").disabled = true;
  const uploads = files.map(({name, role}) => ({name, contentType: contentType(app.files.get(name), name, role)}));
  const key = crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
  let started;
  try {
    const r = await fetch(`${app.config.apiBase}/export_start`, {method: "POST",
      headers: apiHeaders({"Content-Type": "application/json", "Idempotency-Key": key}),
      body: JSON.stringify({spec: app.spec, uploads})});
    if (!r.ok) {
      const {message, details} = await errorText(r);
      showError("$", `export_start refused the request: ${message}`);
      fieldErrors(details);
      return updateRender();
    }
    started = await r.json();  // StartResponse {jobId, status, statusUrl, uploads: [UploadTarget]}
  } catch (e) {
    showError("$", `export_start could not be called (${e.message}): is this page's origin allowed (EXPORT_CORS_ORIGINS)?`);
    return updateRender();
  }
  app.jobId = started.jobId;
  setStatus(started.status);
  $("job").textContent = `job ${started.jobId}`;
  addHistory(started.status, null, new Date());
  app.uploads = started.uploads;
  await uploadAndReport(started.uploads);
  poll(started.statusUrl);
}

async function uploadAndReport(targets) {
  // upload `targets`; on failures name them and offer to retry those (same signed URLs), since the
  // export waits for every file and nothing else would send them again
  $("retry-uploads").hidden = true;
  const failures = await uploadAll(targets);
  const failed = new Set(failures.map(({path}) => path.slice("uploads.".length)));
  app.failedUploads = targets.filter((t) => failed.has(t.name));
  fieldErrors(failures);
  showError("$", failures.length
    ? `${failures.length} of ${app.uploads.length} uploads failed: the export waits for them (retry below)` : "");
  $("retry-uploads").hidden = !failures.length;
  $("retry-uploads").disabled = false;
}

async function retryUploads() {
  $("retry-uploads").disabled = true;
  await uploadAndReport(app.failedUploads);
}

async function uploadAll(targets) {
  // PUT each file to its UploadTarget.url with exactly UploadTarget.headers; [{path, message}] of failures
  const queue = [...targets];
  const failures = [];
  const worker = async () => {
    for (let t = queue.shift(); t; t = queue.shift()) {
      const li = $(`asset-${t.name}`);
      try {
        const r = await fetch(t.url, {method: t.method, headers: t.headers, body: app.files.get(t.name)});
        const answer = await r.text();  // read to the end: an unread body is aborted
        if (!r.ok) throw new Error(`HTTP ${r.status} ${answer.slice(0, 200)}`);
        if (li) li.textContent = `${t.name}: uploaded`;
      } catch (e) {
        failures.push({path: `uploads.${t.name}`, message: `upload failed: ${e.message}`});
        if (li) li.textContent = `${t.name}: upload failed`;
      }
    }
  };
  await Promise.all(Array.from({length: UPLOADS_AT_ONCE}, worker));
  return failures;
}

function stageLabel(view) {
  // "rendering 3/5 parts" when the export renders in parts (PartsView), else the stage itself
  if (view.stage === "rendering" && view.parts) return `rendering ${view.parts.rendered}/${view.parts.count} parts`;
  return view.stage || "";
}

function addHistory(status, stage, at) {
  const last = app.history[app.history.length - 1];
  if (last && last.status === status && last.stage === stage) return;
  app.history.push({status, stage, at: at.toISOString()});
  const li = document.createElement("li");
  const time = document.createElement("time");
  time.dateTime = at.toISOString();
  time.textContent = at.toLocaleTimeString([], {hour12: false});
  li.append(time, stage ? `${status}: ${stage}` : status);
  $("history").append(li);
}

async function poll(statusUrl) {
  let view;
  try {
    const r = await fetch(statusUrl, {headers: apiHeaders(), cache: "no-store"});
    if (!r.ok) {
      showError("status", `export_status: ${(await errorText(r)).message} (trying again)`);
      return setTimeout(() => poll(statusUrl), POLL_MS * 3);
    }
    view = await r.json();  // StatusResponse
  } catch (e) {
    showError("status", `export_status could not be called: ${e.message} (trying again)`);
    return setTimeout(() => poll(statusUrl), POLL_MS * 3);
  }
  // a poll's trouble has its own line: it passes, and must not hide an upload's or the start's
  showError("status", "");
  app.polls += 1;
  // the API's own history first (each status once, with its time), then the stages seen while running
  for (const h of view.history || []) {
    if (!app.history.some((e) => e.status === h.status)) addHistory(h.status, null, new Date(h.at));
  }
  if (view.status === "running" && view.stage) addHistory(view.status, stageLabel(view), new Date());
  app.stage = view.stage;
  $("progress").hidden = false;
  $("progress").value = view.progress ?? 0;
  $("stage-line").textContent = `${view.status}${view.stage ? `: ${stageLabel(view)}` : ""}`
    + ` · ${Math.round(100 * (view.progress ?? 0))} %`
    + (view.uploads ? ` · ${view.uploads.received.length}/${view.uploads.expected.length} files received` : "");
  if (!TERMINAL.has(view.status)) {
    setStatus(view.status);
    return setTimeout(() => poll(statusUrl), POLL_MS);
  }
  $("retry-uploads").hidden = true;  // nothing to upload any more
  if (view.status === "succeeded") showResult(view.output);
  else {
    app.error = view.error;
    showError("$", `the export ${view.status}: ${view.error ? `${view.error.code}: ${view.error.message}` : ""}`);
  }
  setStatus(view.status);
}

// -- 4. the result: poster, player, captions
function showResult(output) {
  app.output = output;
  $("result").hidden = false;
  $("poster").src = output.posterUrl || "";
  const video = $("video");
  video.poster = output.posterUrl || "";
  if (output.captions && output.captions.vtt) {
    const track = document.createElement("track");
    Object.assign(track, {kind: "captions", srclang: "en", label: "Captions", src: output.captions.vtt, default: true});
    video.append(track);
    // the cues load either way; with captions burned in, showing them again would double them
    track.track.mode = app.spec && app.spec.captions && app.spec.captions.burnIn ? "hidden" : "showing";
    $("captions-link").href = output.captions.vtt;
  }
  video.src = output.url;
  $("download").href = output.url;
  $("video-caption").textContent = `${output.width}×${output.height}, ${(output.durationS ?? 0).toFixed(2)} s, `
    + `${((output.sizeBytes ?? 0) / 1e6).toFixed(1)} MB`;
}

async function main() {
  try {
    const r = await fetch("config.json", {cache: "no-store"});
    app.config = await r.json();
  } catch (e) {
    $("config-line").textContent = `no configuration (config.json): ${e.message}`;
    return;
  }
  $("config-line").textContent = `API ${app.config.apiBase} · issuer ${app.config.issuer}`;
  $("signin-form").addEventListener("submit", signIn);
  $("storyboard-file").addEventListener("change", chooseStoryboard);
  $("asset-files").addEventListener("change", chooseFiles);
  $("use-example").addEventListener("click", useExample);
  $("render").addEventListener("click", render);
  $("retry-uploads").addEventListener("click", retryUploads);
  document.body.dataset.ready = "1";
  updateRender();
}

main();
