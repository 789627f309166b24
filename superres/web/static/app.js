// superres serve: the page. Plain JavaScript, no build step, nothing loaded from elsewhere.
//
// Images are uploaded one at a time (POST /api/jobs); each job's progress comes over server-sent
// events (GET /api/jobs/{id}/events), a few streams at a time, so that a dropped folder of a hundred
// images does not use up the browser's connections. The before/after view compares the local file
// with the result, in two layers moved and zoomed together.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const IMAGE_NAME = /\.(png|jpe?g|jfif|webp|bmp|tiff?|gif|tga|ppm|pgm|pnm|avif)$/i;
const STREAMS_AT_ONCE = 4;

const state = { models: [], jobs: [], uploads: [], uploading: false, watching: 0, waiting: [] };

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function announce(text) {
  $("#status").textContent = text;
}

// ---- settings ---------------------------------------------------------------------------------

function fillSelect(select, values, labels = values) {
  select.replaceChildren(...values.map((value, i) => new Option(labels[i], value)));
}

async function loadModels(select = null) {
  const info = await api("/api/models");
  state.models = info.models;
  const model = $("#model");
  const current = select || model.value || info.default;
  fillSelect(model, info.models.map((m) => m.name), info.models.map((m) => `${m.label} (×${m.scale})`));
  model.value = info.models.some((m) => m.name === current) ? current : info.default;
  if (!$("#precision").options.length) {
    fillSelect($("#precision"), info.precisions);
    fillSelect($("#device"), info.devices);
  }
  onModelChange();
}

function chosenModel() {
  return state.models.find((m) => m.name === $("#model").value);
}

function onModelChange() {
  const model = chosenModel();
  if (!model) return;
  $("#model-about").textContent = `${model.arch}. ${model.description}`;
  $("#outscale").placeholder = `×${model.scale}`;
  const partner = $("#partner");
  const partners = state.models.filter((m) => model.partners.includes(m.name));
  partner.replaceChildren(new Option("nothing (model alone)", ""), ...partners.map((m) => new Option(m.label, m.name)));
  $("#blend").hidden = partners.length === 0;
  onPartnerChange();
}

function onPartnerChange() {
  $("#strength").disabled = !$("#partner").value;
  $("#strength-value").textContent = Number($("#strength").value).toFixed(2);
}

function settingsForm() {
  const form = new FormData();
  form.set("model", $("#model").value);
  if ($("#partner").value) {
    form.set("partner", $("#partner").value);
    form.set("strength", $("#strength").value);
  }
  for (const name of ["outscale", "tile"]) {
    if ($(`#${name}`).value !== "") form.set(name, $(`#${name}`).value);
  }
  form.set("format", $("#format").value);
  if (!$("#quality").disabled) form.set("quality", $("#quality").value);
  form.set("precision", $("#precision").value);
  form.set("device", $("#device").value);
  return form;
}

async function uploadWeights(file) {
  announce(`Reading ${file.name}…`);
  const form = new FormData();
  form.set("weights", file);
  try {
    const model = await api("/api/weights", { method: "POST", body: form });
    await loadModels(model.name);
    announce(`${file.name}: ${model.arch} ×${model.scale}, ready to use.`);
  } catch (error) {
    announce(`${file.name}: ${error.message}`);
  }
}

// ---- jobs -------------------------------------------------------------------------------------

function addFiles(files) {
  const images = [...files].filter((f) => f.type.startsWith("image/") || IMAGE_NAME.test(f.name));
  if (!images.length) {
    announce("No images among those files.");
    return;
  }
  for (const file of images) {
    const url = URL.createObjectURL(file);
    const job = { file, id: null, url, info: null, element: makeJobElement(file, url) };
    state.jobs.push(job);
    state.uploads.push(job);
  }
  announce(`${images.length} image${images.length > 1 ? "s" : ""} added.`);
  uploadNext();
}

function makeJobElement(file, url) {
  const element = $("#job-template").content.firstElementChild.cloneNode(true);
  $(".thumb", element).src = url;
  $(".name", element).textContent = file.name;
  $(".state", element).textContent = "waiting";
  $("#jobs").append(element);
  return element;
}

async function uploadNext() {
  if (state.uploading || !state.uploads.length) return;
  state.uploading = true;
  const job = state.uploads.shift();
  const form = settingsForm();
  form.set("image", job.file, job.file.name);
  try {
    const info = await api("/api/jobs", { method: "POST", body: form });
    job.id = info.id;
    show(job, info);
    watch(job);
  } catch (error) {
    show(job, { state: "failed", error: error.message, progress: { done: 0, total: 0 } });
  }
  state.uploading = false;
  uploadNext();
}

function watch(job) {
  if (state.watching >= STREAMS_AT_ONCE) {
    state.waiting.push(job);
    return;
  }
  state.watching += 1;
  const events = new EventSource(`/api/jobs/${job.id}/events`);
  const stop = () => {
    events.close();
    state.watching -= 1;
    if (state.waiting.length) watch(state.waiting.shift());
  };
  events.onmessage = (message) => {
    const info = JSON.parse(message.data);
    show(job, info);
    if (["done", "failed", "cancelled"].includes(info.state)) stop();
  };
  events.onerror = async () => {  // the job is gone (expired, or the server restarted)
    stop();
    try {
      show(job, await api(`/api/jobs/${job.id}`));
    } catch (error) {
      show(job, { state: "failed", error: error.message, progress: { done: 0, total: 0 } });
    }
  };
}

function show(job, info) {
  const element = job.element;
  const previous = job.info && job.info.state;
  job.info = info;
  element.dataset.state = info.state;
  $(".state", element).textContent = info.state;
  const bar = $("progress", element);
  const { done, total } = info.progress;
  if (info.state === "running" && total === 0) bar.removeAttribute("value");  // indeterminate
  else bar.value = info.state === "done" ? 1 : total ? done / total : 0;
  const finished = ["done", "failed", "cancelled"].includes(info.state);
  let detail = "";
  if (info.state === "running" && total) detail = `step ${done} of ${total}`;
  if (info.state === "done") {
    detail = `${info.width}×${info.height}, ${(info.bytes / 1024).toFixed(0)} KB, ${info.seconds.toFixed(2)} s`;
    if (info.note) detail += ` — ${info.note}`;
  }
  if (info.state === "failed") detail = info.error;
  $(".detail", element).textContent = detail;
  $(".cancel", element).hidden = finished;
  $(".remove", element).hidden = !finished;
  $(".compare", element).hidden = info.state !== "done";
  const link = $(".download", element);
  link.hidden = info.state !== "done";
  if (info.state === "done") {
    link.href = `/api/jobs/${job.id}/result`;
    link.download = info.download_name;
  }
  if (finished && previous !== info.state) {
    announce(`${job.file.name}: ${info.state}${info.state === "done" ? ` in ${info.seconds.toFixed(2)} s` : ""}.`);
    updateDownloadAll();
  }
}

function updateDownloadAll() {
  const ids = state.jobs.filter((j) => j.info && j.info.state === "done").map((j) => j.id);
  const link = $("#download-all");
  link.setAttribute("aria-disabled", String(!ids.length));
  link.href = ids.length ? `/api/zip?ids=${ids.join(",")}` : "#";
}

async function onJobClick(event) {
  const button = event.target.closest("button");
  const job = state.jobs.find((j) => j.element.contains(event.target));
  if (!button || !job) return;
  if (button.classList.contains("compare")) openViewer(job);
  if (button.classList.contains("cancel")) {
    const waiting = state.uploads.indexOf(job);
    if (waiting >= 0) {
      state.uploads.splice(waiting, 1);
      show(job, { state: "cancelled", progress: { done: 0, total: 0 } });
    } else if (job.id) {
      await api(`/api/jobs/${job.id}`, { method: "DELETE" }).catch((error) => announce(error.message));
    }
  }
  if (button.classList.contains("remove")) {
    if (job.id) await api(`/api/jobs/${job.id}`, { method: "DELETE" }).catch(() => {});
    job.element.remove();
    state.jobs.splice(state.jobs.indexOf(job), 1);
    updateDownloadAll();
  }
}

// ---- folders, drops, paste --------------------------------------------------------------------

async function filesOfEntry(entry) {
  if (entry.isFile) return [await new Promise((resolve, reject) => entry.file(resolve, reject))];
  const reader = entry.createReader();
  const files = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) return files;
    for (const child of batch) files.push(...(await filesOfEntry(child)));
  }
}

async function onDrop(event) {
  event.preventDefault();
  $("#drop").classList.remove("over");
  const entries = [...event.dataTransfer.items].map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry());
  if (entries.every(Boolean)) {
    const files = [];
    for (const entry of entries) files.push(...(await filesOfEntry(entry)));
    addFiles(files);
  } else {
    addFiles(event.dataTransfer.files);
  }
}

function onPaste(event) {
  const files = [...event.clipboardData.files].map((file) =>
    file.name && file.name !== "image.png" ? file : new File([file], `pasted-${Date.now()}.png`, { type: file.type }));
  if (files.length) addFiles(files);
}

// ---- before / after ---------------------------------------------------------------------------

const view = { job: null, width: 0, height: 0, zoom: 1, x: 0, y: 0, drag: null };

function openViewer(job) {
  view.job = job;
  view.width = job.info.width;
  view.height = job.info.height;
  for (const [id, src] of [["#after", `/api/jobs/${job.id}/result`], ["#before", job.url]]) {
    const image = $(id);
    image.src = src;
    image.style.width = `${view.width}px`;
    image.style.height = `${view.height}px`;
  }
  $("#viewer").hidden = false;
  $("#viewer-info").textContent = `${job.file.name}: ${view.width}×${view.height}`;
  zoomTo("fit");
  $("#viewport").focus();
}

function render() {
  const transform = `translate(${view.x}px, ${view.y}px) scale(${view.zoom})`;
  $("#after").style.transform = transform;
  $("#before").style.transform = transform;
  const split = Number($("#split").value);
  $("#before-layer").style.clipPath = `inset(0 ${100 - split}% 0 0)`;
  $("#divider").style.left = `${split}%`;
  $("#viewport").classList.toggle("pixels", view.zoom * devicePixelRatio >= 2);
}

function zoomAt(zoom, cx, cy) {  // keep the image point under (cx, cy) where it is
  zoom = Math.min(64, Math.max(0.02, zoom));
  view.x = cx - ((cx - view.x) * zoom) / view.zoom;
  view.y = cy - ((cy - view.y) * zoom) / view.zoom;
  view.zoom = zoom;
  render();
}

function zoomTo(how) {
  const box = $("#viewport").getBoundingClientRect();
  if (how === "fit" || how === "1") {
    view.zoom = how === "fit" ? Math.min(box.width / view.width, box.height / view.height) : 1 / devicePixelRatio;
    view.x = (box.width - view.width * view.zoom) / 2;
    view.y = (box.height - view.height * view.zoom) / 2;
    render();
  } else {
    zoomAt(view.zoom * (how === "in" ? 1.5 : 1 / 1.5), box.width / 2, box.height / 2);
  }
}

function panBy(dx, dy) {
  view.x += dx;
  view.y += dy;
  render();
}

function onViewportKey(event) {
  const step = 48;
  const keys = {
    ArrowLeft: () => panBy(step, 0), ArrowRight: () => panBy(-step, 0),
    ArrowUp: () => panBy(0, step), ArrowDown: () => panBy(0, -step),
    "+": () => zoomTo("in"), "=": () => zoomTo("in"), "-": () => zoomTo("out"),
    "0": () => zoomTo("fit"), "1": () => zoomTo("1"),
  };
  if (keys[event.key]) {
    event.preventDefault();
    keys[event.key]();
  }
}

function setUpViewer() {
  const viewport = $("#viewport");
  viewport.addEventListener("wheel", (event) => {
    event.preventDefault();
    const box = viewport.getBoundingClientRect();
    zoomAt(view.zoom * Math.exp(-event.deltaY / 300), event.clientX - box.left, event.clientY - box.top);
  }, { passive: false });
  viewport.addEventListener("pointerdown", (event) => {
    viewport.setPointerCapture(event.pointerId);
    view.drag = { x: event.clientX, y: event.clientY };
  });
  viewport.addEventListener("pointermove", (event) => {
    if (!view.drag) return;
    panBy(event.clientX - view.drag.x, event.clientY - view.drag.y);
    view.drag = { x: event.clientX, y: event.clientY };
  });
  viewport.addEventListener("pointerup", () => { view.drag = null; });
  viewport.addEventListener("keydown", onViewportKey);
  $("#split").addEventListener("input", render);
  for (const button of document.querySelectorAll("[data-zoom]")) {
    button.addEventListener("click", () => zoomTo(button.dataset.zoom));
  }
  $("#viewer-close").addEventListener("click", () => { $("#viewer").hidden = true; });
}

// ---- start ------------------------------------------------------------------------------------

function start() {
  $("#files").addEventListener("change", (event) => { addFiles(event.target.files); event.target.value = ""; });
  $("#folder").addEventListener("change", (event) => { addFiles(event.target.files); event.target.value = ""; });
  $("#weights").addEventListener("change", (event) => {
    if (event.target.files[0]) uploadWeights(event.target.files[0]);
    event.target.value = "";
  });
  $("#model").addEventListener("change", onModelChange);
  $("#partner").addEventListener("change", onPartnerChange);
  $("#strength").addEventListener("input", onPartnerChange);
  $("#format").addEventListener("change", () => {
    $("#quality").disabled = !["jpg", "webp"].includes($("#format").value);
  });
  const drop = $("#drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", onDrop);
  // a file dropped beside the zone must not make the browser leave the page to show it
  document.addEventListener("dragover", (event) => event.preventDefault());
  document.addEventListener("drop", (event) => event.preventDefault());
  document.addEventListener("paste", onPaste);
  $("#jobs").addEventListener("click", onJobClick);
  setUpViewer();
  loadModels().catch((error) => announce(`Cannot reach the server: ${error.message}`));
}

start();
