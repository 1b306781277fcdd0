// custody portal: resumable chunked uploads and bundle progress. No framework, no build step.
"use strict";

const csrf = () => document.getElementById("main").dataset.csrf;
const wait = (ms) => new Promise((r) => setTimeout(r, ms));

async function api(method, url, body, headers) {
  const opts = { method, credentials: "same-origin",
                 headers: { "Accept": "application/json", "X-CSRF-Token": csrf(), ...(headers || {}) } };
  if (body instanceof Blob || body instanceof ArrayBuffer) opts.body = body;
  else if (body !== undefined) { opts.body = JSON.stringify(body); opts.headers["Content-Type"] = "application/json"; }
  const r = await fetch(url, opts);
  let data = {};
  try { data = await r.json(); } catch (e) { /* not JSON */ }
  if (r.status === 401) { window.location.href = "/signin"; }
  return { ok: r.ok, status: r.status, data };
}

async function sha256hex(buf) {
  if (!window.crypto || !crypto.subtle) return null;  // insecure context: the server still hashes the whole file
  const d = await crypto.subtle.digest("SHA-256", buf);
  return Array.from(new Uint8Array(d)).map((b) => b.toString(16).padStart(2, "0")).join("");
}

function fmt(n) { return n >= 1048576 ? (n / 1048576).toFixed(1) + " MiB" : Math.ceil(n / 1024) + " KiB"; }

function row(file) {
  const li = document.createElement("li");
  li.innerHTML = '<div class="name"></div><progress max="100" value="0"></progress><div class="state" aria-live="polite"></div>';
  li.querySelector(".name").textContent = file.name;
  li.querySelector("progress").setAttribute("aria-label", "Upload progress of " + file.name);
  document.getElementById("upload-list").appendChild(li);
  return {
    li,
    set(sent, text) {
      li.querySelector("progress").value = file.size ? Math.floor((sent * 100) / file.size) : 100;
      li.querySelector(".state").textContent = text;
    },
  };
}

async function uploadFile(form, exhibitId, file, ui) {
  const caseId = form.dataset.case;
  const base = `/cases/${caseId}/exhibits/${exhibitId}/upload-sessions`;
  const memo = `custody-upload:${exhibitId}:${file.name}:${file.size}:${file.lastModified}`;
  let state = null;
  const known = localStorage.getItem(memo);
  if (known) {  // the page was reloaded mid-upload: continue that session
    const r = await api("GET", `${base}/${known}`);
    if (r.ok) state = r.data;
  }
  if (!state) {
    const f = form.elements;
    const r = await api("POST", base, {
      name: file.name, size: file.size, content_type: file.type || "",
      // the time as the officer typed it plus the zone it was typed in: the server converts and records both
      seized_at: f.seized_at.value || null, seized_at_zone: f.seized_zone.value.trim() || null,
      location: f.location.value || null, device: f.device.value || null });
    if (!r.ok) throw new Error(r.data.detail || `could not start (${r.status})`);
    state = r.data;
    localStorage.setItem(memo, state.id);
  }
  let offset = state.received, failures = 0, resumed = 0;
  const chunk = state.chunk_size;
  ui.set(offset, offset ? `resuming at ${fmt(offset)}` : "sending");
  while (offset < file.size) {
    const buf = await file.slice(offset, Math.min(offset + chunk, file.size)).arrayBuffer();
    const hash = await sha256hex(buf);
    let r;
    try {
      r = await api("PUT", `${base}/${state.id}/chunk?offset=${offset}`, buf,
                    { "Content-Type": "application/octet-stream", ...(hash ? { "X-Chunk-SHA256": hash } : {}) });
    } catch (e) {
      r = { ok: false, status: 0, data: { detail: "connection lost" } };
    }
    if (r.ok) { offset = r.data.received; failures = 0; ui.set(offset, `${fmt(offset)} of ${fmt(file.size)}`); continue; }
    if (r.status === 409 && typeof r.data.received === "number") { offset = r.data.received; resumed += 1; continue; }
    if (r.status === 401 || r.status === 403 || r.status === 404) throw new Error(r.data.detail || `refused (${r.status})`);
    failures += 1;
    if (failures > 12) throw new Error(`gave up after repeated failures: ${r.data.detail || r.status}`);
    ui.set(offset, `connection problem (${r.data.detail || r.status}); retrying from the last confirmed piece…`);
    await wait(Math.min(250 * 2 ** failures, 8000));
    const s = await api("GET", `${base}/${state.id}`).catch(() => null);  // where does the server stand?
    if (s && s.ok) { offset = s.data.received; resumed += 1; }
  }
  ui.set(offset, "hashing and storing…");
  const done = await api("POST", `${base}/${state.id}/complete`);
  if (!done.ok) throw new Error(done.data.detail || `could not finish (${done.status})`);
  localStorage.removeItem(memo);
  return { ...done.data, resumes: resumed };
}

function initUpload() {
  const form = document.getElementById("upload-form");
  if (!form) return;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const status = document.getElementById("upload-status");
    const f = form.elements;
    if (!f.ref.value.trim() || !f.officer.value.trim() || !f.files.files.length) {
      status.textContent = "Give the exhibit reference, the producing officer and at least one file.";
      (f.ref.value.trim() ? (f.officer.value.trim() ? f.files : f.officer) : f.ref).focus();
      return;
    }
    const button = document.getElementById("start-upload");
    button.disabled = true;
    status.textContent = "Registering the exhibit…";
    const ex = await api("POST", `/cases/${form.dataset.case}/upload/exhibit`,
                         { ref: f.ref.value.trim(), officer: f.officer.value.trim(), description: f.description.value });
    if (!ex.ok) { status.textContent = "Refused: " + (ex.data.detail || ex.status); button.disabled = false; return; }
    let ok = 0;
    const files = Array.from(f.files.files);
    for (const file of files) {
      const ui = row(file);
      try {
        const r = await uploadFile(form, ex.data.exhibit_id, file, ui);
        ui.li.classList.add("done");
        ui.li.dataset.sha256 = r.sha256;
        ui.set(file.size, `stored: ${r.status}${r.linked ? " (identical file already held, linked)" : ""}` +
               `${r.resumes ? `, resumed ${r.resumes}×` : ""} — SHA-256 ${r.sha256}`);
        ok += 1;
      } catch (e) {
        ui.li.classList.add("failed");
        ui.set(0, "not stored: " + e.message + " — choose the file again to resume.");
      }
    }
    status.innerHTML = "";
    status.append(`${ok} of ${files.length} file(s) stored in exhibit ${ex.data.exhibit}. `);
    const a = document.createElement("a");
    a.href = ex.data.url; a.textContent = "Open the exhibit";
    status.append(a);
    button.disabled = false;
  });
}

function initSeizureZone() {
  const z = document.getElementById("seized-zone");
  if (!z || z.value) return;
  try { z.value = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { /* leave it for the officer */ }
}

function initBundleForm() {
  const form = document.getElementById("bundle-form");
  if (!form) return;
  form.addEventListener("submit", () => {
    const picked = Array.from(form.querySelectorAll("input.pick:checked")).map((i) => i.value);
    document.getElementById("bundle-objects").value = picked.join(",");
  });
}

function initBundle() {
  const box = document.getElementById("bundle-job");
  if (!box) return;
  const phase = document.getElementById("bundle-phase");
  const bar = document.getElementById("bundle-progress");
  const link = document.getElementById("bundle-download");
  const result = document.getElementById("bundle-result");
  const poll = async () => {
    const r = await api("GET", box.dataset.statusUrl).catch(() => null);
    if (r && r.ok) {
      const j = r.data;
      bar.value = j.percent;
      if (j.state === "done") {
        phase.textContent = "Bundle ready.";
        result.textContent = `SHA-256 ${j.result.sha256}, ${j.result.size.toLocaleString()} bytes, ` +
                             `${j.result.payload_files} payload files.`;
        result.hidden = false;
        if (j.download && link.dataset.allowed !== "no") { link.href = j.download; link.hidden = false; link.focus(); }
        return;
      }
      if (j.state === "failed") { phase.textContent = "Bundle failed: " + j.error; return; }
      phase.textContent = `Building: ${j.phase}${j.label ? " — " + j.label : ""} (${j.percent}%)`;
    }
    setTimeout(poll, 700);
  };
  poll();
}

document.addEventListener("DOMContentLoaded", () => { initUpload(); initSeizureZone(); initBundleForm(); initBundle(); });
