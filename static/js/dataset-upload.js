// The upload page: sends the form to the API with XMLHttpRequest (whose upload events give
// the progress bar), then opens the new version's page, which follows its validation.

import { readJson } from "./live.js";

const config = readJson("upload-config", {});
const form = document.getElementById("upload-form");
const errors = document.getElementById("upload-errors");
const panel = document.getElementById("upload-progress");
const bar = document.getElementById("upload-bar");
const percent = document.getElementById("upload-percent");
const statusText = document.getElementById("upload-status");
const button = form.querySelector('[data-testid="upload-submit"]');

function setProgress(fraction) {
  const value = Math.max(0, Math.min(100, Math.round(fraction * 100)));
  bar.querySelector("span").style.width = `${value}%`;
  bar.setAttribute("aria-valuenow", String(value));
  percent.textContent = `${value}%`;
}

function showErrors(messages) {
  errors.replaceChildren(
    ...messages.map((text) => {
      const item = document.createElement("li");
      item.textContent = text;
      return item;
    }),
  );
  errors.hidden = messages.length === 0;
}

function messagesOf(body, status) {
  // The API's error shapes: {"errors": {"field": ["..."]}} and {"detail": "..."}.
  if (body && body.errors) {
    return Object.entries(body.errors).flatMap(([field, list]) =>
      (Array.isArray(list) ? list : [list]).map((m) => (field === "__all__" ? m : `${field}: ${m}`)),
    );
  }
  if (body && body.detail) return [String(body.detail)];
  return [status ? `The upload failed (HTTP ${status}).` : "The upload failed: the portal did not answer."];
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  showErrors([]);
  const file = form.elements.namedItem("file").files[0];
  if (!file) return showErrors(["Choose a file to upload."]);
  if (config.maxBytes && file.size > config.maxBytes) {
    return showErrors([`The file is larger than the upload limit of ${config.maxBytes} bytes.`]);
  }
  const data = new FormData(form);
  const token = data.get("csrfmiddlewaretoken");
  data.delete("csrfmiddlewaretoken"); // sent as a header, checked before the body is read
  // Fields left empty are not sent, so the portal's defaults apply.
  for (const key of [...new Set(data.keys())]) if (data.get(key) === "") data.delete(key);

  const xhr = new XMLHttpRequest();
  xhr.open("POST", config.api || form.action);
  xhr.setRequestHeader("X-CSRFToken", token);
  xhr.setRequestHeader("Accept", "application/json");
  xhr.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable) setProgress(e.loaded / e.total);
  });
  xhr.upload.addEventListener("load", () => {
    setProgress(1);
    statusText.textContent = "Uploaded; storing…";
  });
  xhr.addEventListener("load", () => {
    let body = null;
    try {
      body = JSON.parse(xhr.responseText);
    } catch {
      body = null;
    }
    if (xhr.status === 201 && body) {
      statusText.textContent = "Stored; checking the file…";
      window.location.assign(body.urls.web);
      return;
    }
    panel.hidden = true;
    button.disabled = false;
    showErrors(messagesOf(body, xhr.status));
  });
  xhr.addEventListener("error", () => {
    panel.hidden = true;
    button.disabled = false;
    showErrors(messagesOf(null, 0));
  });
  panel.hidden = false;
  statusText.textContent = `Uploading ${file.name}…`;
  setProgress(0);
  button.disabled = true;
  xhr.send(data);
});
