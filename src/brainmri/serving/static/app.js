// brainmri web page: upload a scan, show label, probability bars, heat map and the disclaimer.
"use strict";

const $ = (id) => document.getElementById(id);

function apiHeaders() {
  const key = $("key-input").value;
  return key ? { "X-API-Key": key } : {};
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function loadModel() {
  try {
    const res = await fetch("/v1/model", { headers: apiHeaders() });
    if (res.status === 401) {
      $("key-label").hidden = false;
      $("model-info").textContent = $("key-input").value ? "The API key was rejected: check it." : "This server needs an API key.";
      return;
    }
    const info = await res.json();
    $("model-info").textContent = `Model: ${info.architecture}, classes: ${info.classes.join(", ")}.`;
    $("version").textContent = `brainmri ${info.version}`;
    if (!info.explain_available) {
      $("explain-input").disabled = true;
      $("explain-input").parentElement.title = "Heat maps are not available with this model";
    }
  } catch (err) {
    $("model-info").textContent = "Could not reach the model endpoint.";
  }
}

function renderBars(probabilities, top) {
  const bars = $("bars");
  bars.replaceChildren();
  for (const [name, p] of Object.entries(probabilities)) {
    const row = document.createElement("div");
    row.className = "bar-row" + (name === top ? " top" : "");
    row.dataset.cls = name;
    const label = document.createElement("span");
    label.className = "bar-label";
    label.textContent = name;
    const track = document.createElement("div");
    track.className = "bar-track";
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = `${(100 * p).toFixed(1)}%`;
    track.appendChild(bar);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = `${(100 * p).toFixed(1)}%`;
    row.append(label, track, value);
    bars.appendChild(row);
  }
}

function volumeNote(data) {
  // which slices the verdict rests on: a volume is read at the server's --axis / --slices only
  const info = data.info || {};
  if (!data.most_suspicious_slices || !info.slice_indices) return "";
  const idx = info.slice_indices;
  const consecutive = idx.every((v, i) => i === 0 || v === idx[i - 1] + 1);
  const read = idx.length === 1 ? `slice ${idx[0]}` : consecutive ? `slices ${idx[0]}–${idx[idx.length - 1]}`
    : idx.length <= 10 ? `slices ${idx.join(", ")}` : `slices ${idx[0]} to ${idx[idx.length - 1]}, not all between`;
  const all = info.num_slices && idx.length >= info.num_slices;
  let note = `Volume: ${idx.length} of ${info.num_slices} ${info.axis || ""} slices classified (${read}, counted from 0)`;
  note += all ? "." : "; the other slices were not looked at, so a lesion outside them can be missed.";
  if (info.slices_not_normal && info.slices_used > 1) {
    note += ` ${info.slices_not_normal} of ${info.slices_used} slices called a finding on their own; the label is the mean over slices.`;
  }
  if (!data.out_of_distribution && data.most_suspicious_slices.length) note += ` Most suspicious: ${data.most_suspicious_slices.join(", ")}.`;
  if (data.overlay_slice !== undefined) note += ` Heat map: slice ${data.overlay_slice}.`;
  return note;
}

function clearResult() {
  $("label").textContent = "-";
  $("result-file").textContent = "";
  $("confidence").textContent = "";
  $("ood").hidden = true;
  $("bars").replaceChildren();
  $("slices").textContent = "";
  $("overlay-figure").hidden = true;
  $("overlay").removeAttribute("src");
}

function renderResult(data, fileName) {
  $("result").hidden = false;
  $("status").textContent = `Done. ${fileName}: ${data.label === null ? "not classified" : data.label}.`;
  $("result-file").textContent = `${fileName}: `;
  const top = Object.entries(data.probabilities).sort((a, b) => b[1] - a[1])[0][0];
  $("label").textContent = data.label === null ? "not classified" : data.label;
  const ood = Boolean(data.out_of_distribution);
  // an input the model was not made for gets no confidence and no probability bars: they would read as a diagnosis
  $("confidence").textContent = ood || data.confidence === null ? "" : `(${(100 * data.confidence).toFixed(1)}% calibrated confidence)`;
  $("ood").hidden = !ood;
  $("ood").textContent = ood ? `This does not look like a brain MRI: ${data.ood_reason}` : "";
  $("bars").hidden = ood;
  renderBars(data.probabilities, top);
  $("slices").textContent = volumeNote(data);
  if (data.overlay_png) {
    $("overlay").src = `data:image/png;base64,${data.overlay_png}`;
    $("overlay-figure").hidden = false;
  } else {
    $("overlay-figure").hidden = true;
  }
}

async function onSubmit(event) {
  event.preventDefault();
  showError("");
  const file = $("file-input").files[0];
  if (!file) { showError("Choose a file first."); return; }
  const body = new FormData();
  body.append("file", file);
  const explain = $("explain-input").checked && !$("explain-input").disabled;
  $("submit-button").disabled = true;
  clearResult();  // never show the last file's label, bars or heat map beside a new request
  $("result").hidden = false;
  $("status").textContent = `Classifying ${file.name}…`;
  try {
    const res = await fetch(`/v1/predict?explain=${explain}`, { method: "POST", body, headers: apiHeaders() });
    const data = await res.json();
    if (!res.ok) {
      $("result").hidden = true;
      if (res.status === 401) $("key-label").hidden = false;
      const what = res.status === 401 ? "" : `${file.name}: `;  // the server never sees the name; the page does
      const keyRejected = res.status === 401 && $("key-input").value;
      const message = keyRejected ? "the API key was rejected: check it and try again" : data.error ? data.error.message : `request failed (${res.status})`;
      showError(`${what}${message}${data.error ? ` (${data.error.code})` : ""}`);
      return;
    }
    renderResult(data, file.name);
  } catch (err) {
    $("result").hidden = true;
    showError("The server could not be reached.");
  } finally {
    $("submit-button").disabled = false;
    // on a narrow screen the answer may be below the fold: bring it into view and give it focus
    const target = $("error").hidden ? $("result") : $("error");
    target.scrollIntoView({ block: "nearest" });
    target.focus({ preventScroll: true });
  }
}

function onFileChosen() {
  // a new file chosen: the previous answer is no longer about what the form shows
  if (!$("result").hidden) { clearResult(); $("result").hidden = true; }
  showError("");
}

function onDrop(event) {
  // a file dropped anywhere on the page goes into the form (the browser would otherwise open it, leaving the page)
  event.preventDefault();
  const files = event.dataTransfer && event.dataTransfer.files;
  if (!files || !files.length) return;
  $("file-input").files = files;
  onFileChosen();
  $("submit-button").focus();
}

window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", onDrop);
$("upload-form").addEventListener("submit", onSubmit);
$("file-input").addEventListener("change", onFileChosen);
$("key-input").addEventListener("change", loadModel);
loadModel();
