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
      $("model-info").textContent = "This server needs an API key.";
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

function renderResult(data) {
  $("result").hidden = false;
  $("status").textContent = "Done.";
  const top = Object.entries(data.probabilities).sort((a, b) => b[1] - a[1])[0][0];
  $("label").textContent = data.label === null ? "not classified" : data.label;
  const ood = Boolean(data.out_of_distribution);
  // an input the model was not made for gets no confidence and no probability bars: they would read as a diagnosis
  $("confidence").textContent = ood || data.confidence === null ? "" : `(${(100 * data.confidence).toFixed(1)}% calibrated confidence)`;
  $("ood").hidden = !ood;
  $("ood").textContent = ood ? `This does not look like a brain MRI: ${data.ood_reason}` : "";
  $("bars").hidden = ood;
  renderBars(data.probabilities, top);
  $("slices").textContent = data.most_suspicious_slices ? `Volume: most suspicious slices ${data.most_suspicious_slices.join(", ")}.` : "";
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
  $("result").hidden = false;
  $("status").textContent = "Classifying…";
  try {
    const res = await fetch(`/v1/predict?explain=${explain}`, { method: "POST", body, headers: apiHeaders() });
    const data = await res.json();
    if (!res.ok) {
      $("result").hidden = true;
      if (res.status === 401) $("key-label").hidden = false;
      const what = res.status === 401 ? "" : `${file.name}: `;  // the server never sees the name; the page does
      showError(data.error ? `${what}${data.error.message} (${data.error.code})` : `${what}request failed (${res.status}).`);
      return;
    }
    renderResult(data);
  } catch (err) {
    $("result").hidden = true;
    showError("The server could not be reached.");
  } finally {
    $("submit-button").disabled = false;
  }
}

$("upload-form").addEventListener("submit", onSubmit);
$("key-input").addEventListener("change", loadModel);
loadModel();
