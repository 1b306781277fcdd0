// custody portal: the clock-time timeline and the review player. No framework, no build step.
// Uses `api` and `csrf` from portal.js. Clock times are integers in microseconds since 1970 (UTC).
"use strict";

const US = 1e6;
const pad = (n, w = 2) => String(n).padStart(w, "0");

function fmtClock(us, withDate = true) {
  if (us === null || us === undefined || Number.isNaN(us)) return "--:--:--.---";
  const ms = Math.floor(us / 1000);
  const d = new Date(ms);
  const t = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}`;
  return withDate ? `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${t}` : t;
}

function parseClock(text, dayUs) {
  // "HH:MM:SS(.fff)" on the timeline's day, or a full "YYYY-MM-DD HH:MM:SS(.fff)" (UTC unless a zone is given)
  const s = text.trim();
  if (!s) return null;
  let iso = s.replace(" ", "T");
  if (/^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(s)) {
    const day = new Date(Math.floor(dayUs / 1000)).toISOString().slice(0, 10);
    iso = `${day}T${s.length <= 5 ? s + ":00" : s}`;
  }
  if (!/[zZ]|[+-]\d{2}:?\d{2}$/.test(iso)) iso += "Z";
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return null;
  const frac = /\.(\d{4,6})/.exec(iso);  // keep sub-millisecond digits Date drops
  return ms * 1000 + (frac ? Number(frac[1].padEnd(6, "0").slice(3, 6)) : 0);
}

function isoOf(us) { return fmtClock(us).replace(" ", "T") + "Z"; }

// ---- timeline -------------------------------------------------------------------------
function Timeline(svg, onPick) {
  const t0 = Number(svg.dataset.t0Us), span = Number(svg.dataset.span);
  let v0 = 0, vw = span;
  const axis = document.getElementById("tl-axis");
  const head = document.getElementById("tl-playhead");
  const steps = [0.04, 0.2, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  function draw() {
    svg.setAttribute("viewBox", `${v0} 0 ${vw} 30`);
    axis.textContent = "";
    const step = steps.find((s) => s >= vw / 6) || 86400;
    for (let t = Math.ceil((t0 / US + v0) / step) * step; t <= t0 / US + v0 + vw; t += step) {
      const el = document.createElement("span");
      el.textContent = vw > 86400 ? fmtClock(t * US).slice(5, 16) : fmtClock(t * US, false).slice(0, step < 1 ? 12 : 8);
      el.style.left = `${((t - t0 / US - v0) / vw) * 100}%`;
      axis.appendChild(el);
    }
  }
  function zoom(f, centre) {
    const c = centre === undefined ? v0 + vw / 2 : centre;
    vw = Math.min(span, Math.max(2, vw * f));
    v0 = Math.min(Math.max(0, c - vw / 2), span - vw);
    draw();
  }
  document.getElementById("tl-zoom-in").addEventListener("click", () => zoom(0.5, playhead));
  document.getElementById("tl-zoom-out").addEventListener("click", () => zoom(2, playhead));
  document.getElementById("tl-zoom-all").addEventListener("click", () => { v0 = 0; vw = span; draw(); });
  let playhead;
  svg.addEventListener("click", (ev) => {
    const r = svg.getBoundingClientRect();
    onPick(t0 + Math.round((v0 + ((ev.clientX - r.left) / r.width) * vw) * US));
  });
  draw();
  return {
    t0,
    set(us) {
      playhead = (us - t0) / US;
      head.setAttribute("x1", playhead); head.setAttribute("x2", playhead);
      if (playhead < v0 || playhead > v0 + vw) { v0 = Math.min(Math.max(0, playhead - vw / 4), span - vw); draw(); }
    },
    activity(files) {
      const g = document.getElementById("tl-activity");
      const bin = span > 4 * 3600 ? 10 : 1;
      let max = 1;
      for (const f of files) for (const b of f.bins) max = Math.max(max, b);
      for (const f of files) {
        for (let i = 0; i < f.bins.length; i += bin / f.bin_seconds) {
          const v = Math.max(...f.bins.slice(i, i + bin / f.bin_seconds));
          if (!(v > 0)) continue;
          const r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
          const h = Math.max(0.5, (v / max) * 10);
          const x = (f.start_us - t0) / US + i * f.bin_seconds;
          // the file's last bin is cut at the file's end: a bar never reaches into the time after it (a gap)
          const w = f.end_us != null ? Math.min(bin, (f.end_us - t0) / US - x) : bin;
          if (!(w > 0)) continue;
          r.setAttribute("x", x);
          r.setAttribute("y", 24 - h); r.setAttribute("width", w); r.setAttribute("height", h);
          r.setAttribute("class", v > f.threshold ? "act hot" : "act");
          g.appendChild(r);
        }
      }
    },
  };
}

// ---- player -------------------------------------------------------------------------
function Player(box, apiBase, timeline) {
  const items = JSON.parse(document.getElementById("player-data").textContent);
  const timed = items.filter((i) => i.timed).sort((a, b) => a.start_us - b.start_us);
  const list = timed.length ? timed : items;
  const clock = document.getElementById("clock"), status = document.getElementById("player-status");
  const nowFile = document.getElementById("now-file"), playBtn = document.getElementById("play");
  let vids = [document.getElementById("video-a"), document.getElementById("video-b")];
  let cur = -1, standby = -1, shown = null;  // shown: {i, mediaTime} of the frame on screen
  const src = (i) => `${apiBase}/objects/${list[i].copy_id}/content`;
  const clockOf = (i, mt) => (list[i].timed ? list[i].start_us + Math.round((mt - list[i].first_frame_time) * US) : null);

  let seekToken = 0;
  function display(i, mediaTime) {
    shown = { i, mediaTime };
    const us = clockOf(i, mediaTime);
    clock.textContent = us === null ? `${mediaTime.toFixed(3)} s (no clock time)` : fmtClock(us) + " UTC";
    clock.dataset.us = us === null ? "" : String(us);
    clock.dataset.mediaTime = String(mediaTime);
    clock.dataset.copyId = list[i].copy_id;
    clock.dataset.sourceId = list[i].source_id;
    clock.dataset.presented = String((Number(clock.dataset.presented) || 0) + 1);
    nowFile.textContent = `${list[i].name}${list[i].partial ? " (partial segment)" : ""} · frame at ${mediaTime.toFixed(3)} s of the review copy`;
    if (us !== null && timeline) timeline.set(us);
  }
  function present(v, i) {  // follow the frames the compositor really shows (their own presentation times)
    const cb = (_now, md) => {
      if (v !== vids[0] || i !== cur) return;
      seekToken += 1;
      display(i, md.mediaTime);
      v.requestVideoFrameCallback(cb);
    };
    v.requestVideoFrameCallback(cb);
  }
  function settle(v, i) {  // a paused seek onto the frame already decoded may present nothing: ask which frame it is
    const token = seekToken;
    setTimeout(async () => {
      if (token !== seekToken || v !== vids[0] || i !== cur || !v.paused) return;
      const it = list[i], fd = it.frame_duration || 0.04, at = v.currentTime;
      const r = await api("GET", `${apiBase}/frames/at?copy_id=${encodeURIComponent(it.copy_id)}&media_time=${at}`);
      if (token !== seekToken || v !== vids[0] || i !== cur || !v.paused || v.currentTime !== at) return;
      if (r.ok) { display(i, r.data.media_time); return; }
      const k = Math.floor((at - it.first_frame_time) / fd + 1e-3);  // no answer: the nominal frame grid
      display(i, Math.round((it.first_frame_time + k * fd) * US) / US);
    }, 300);
  }
  function prepare(v, i, mt) {
    return new Promise((resolve) => {
      const go = () => { v.currentTime = mt; v.addEventListener("seeked", () => resolve(), { once: true }); };
      if (v.dataset.item === String(i) && v.readyState >= 1) { go(); return; }
      v.dataset.item = String(i);
      v.src = src(i);
      v.addEventListener("loadedmetadata", go, { once: true });
      v.load();
    });
  }
  async function show(i, mt, play, fromEnded) {
    const wasPlaying = play === undefined ? !vids[0].paused : play;
    if (fromEnded && i === standby) { vids.reverse(); standby = -1; }  // seamless: the next file is loaded already
    else if (i === standby) standby = -1;
    vids[0].classList.add("active"); vids[1].classList.remove("active");
    vids[1].pause();
    cur = i;
    present(vids[0], i);
    await prepare(vids[0], i, mt);
    if (wasPlaying) await vids[0].play(); else { vids[0].pause(); settle(vids[0], i); }
    playBtn.textContent = vids[0].paused ? "Play" : "Pause";
    if (i + 1 < list.length && standby !== i + 1) {  // the next segment waits, loaded, in the hidden element
      standby = i + 1;
      prepare(vids[1], i + 1, list[i + 1].first_frame_time);
    }
  }
  for (const v of vids) {
    v.addEventListener("ended", () => {
      if (v === vids[0] && cur + 1 < list.length) {
        const next = list[cur + 1];
        if (next.timed && list[cur].timed && next.start_us - list[cur].end_us > 1e6) {
          status.textContent = `No footage from ${fmtClock(list[cur].end_us, false)} to ${fmtClock(next.start_us, false)}; playing on from the next recording.`;
        }
        show(cur + 1, next.first_frame_time, true, true);
      } else if (v === vids[0]) { playBtn.textContent = "Play"; }
    });
  }
  function seekClock(us) {
    let i = list.findIndex((it) => it.timed && it.start_us <= us && us < it.end_us);
    if (i < 0) {
      i = list.findIndex((it) => it.timed && it.start_us > us);
      if (i < 0) { status.textContent = `No footage at or after ${fmtClock(us)} UTC.`; return; }
      status.textContent = `No footage at ${fmtClock(us)} UTC; showing the next recording, from ${fmtClock(list[i].start_us)} UTC.`;
      us = list[i].start_us;
    } else { status.textContent = ""; }
    return show(i, list[i].first_frame_time + (us - list[i].start_us) / US);
  }
  function step(dir) {
    vids[0].pause(); playBtn.textContent = "Play";
    if (!shown) return;
    const it = list[shown.i], fd = it.frame_duration || 0.04;
    const target = shown.mediaTime + (dir > 0 ? 1.25 * fd : -0.75 * fd);
    if (target < it.first_frame_time) {  // into the previous file: its last frame
      if (shown.i > 0 && list[shown.i - 1].timed) seekClock(list[shown.i - 1].end_us - Math.round(0.75 * fd * US));
      return;
    }
    if (vids[0].duration && target >= vids[0].duration) {
      if (shown.i + 1 < list.length) show(shown.i + 1, list[shown.i + 1].first_frame_time, false);
      return;
    }
    show(shown.i, target, false);
  }
  playBtn.addEventListener("click", async () => {
    if (vids[0].paused) { await vids[0].play(); playBtn.textContent = "Pause"; } else { vids[0].pause(); playBtn.textContent = "Play"; }
  });
  document.getElementById("frame-fwd").addEventListener("click", () => step(1));
  document.getElementById("frame-back").addEventListener("click", () => step(-1));
  document.getElementById("jump").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const us = parseClock(document.getElementById("jump-to").value, list[0].start_us || 0);
    if (us === null) { status.textContent = "Give a clock time like 12:00:05.120 or 2026-11-28 12:00:05 (UTC)."; return; }
    seekClock(us);
  });
  document.getElementById("next-activity").addEventListener("click", async () => {
    const us = Number(clock.dataset.us) || (list[0] && list[0].start_us);
    const r = await api("GET", `${apiBase}/activity/next?after=${encodeURIComponent(isoOf(us))}`);
    if (r.ok) { seekClock(r.data.start_us); status.textContent = `Activity from ${fmtClock(r.data.start_us, false)} (peak score ${r.data.peak}).`; }
    else status.textContent = r.status === 404 ? "No activity after this point." : `Could not look up activity (${r.data.detail || r.status}).`;
  });
  const still = document.getElementById("take-still");
  if (still) still.addEventListener("click", async () => {
    vids[0].pause(); playBtn.textContent = "Play";
    if (!shown) return;
    still.disabled = true;
    status.textContent = "Extracting the still from the original…";
    const body = { copy_id: list[shown.i].copy_id, media_time: shown.mediaTime };
    const r = await api("POST", `${apiBase}/stills`, body);
    still.disabled = false;
    if (!r.ok) { status.textContent = `Still not taken: ${r.data.detail || r.status}`; return; }
    const s = r.data, li = document.createElement("li");
    li.className = "taken";
    Object.assign(li.dataset, { pixelSha256: s.pixel_sha256, wallclockUs: s.wallclock_us ?? "", objectId: s.object_id,
                                sourceId: s.source_object_id, frameIndex: s.frame_index, requestedMediaTime: String(body.media_time) });
    li.innerHTML = '<figure><img alt="" class="still"><figcaption></figcaption></figure>';
    li.querySelector("img").src = `${apiBase}/objects/${s.thumb_object_id}/content`;
    li.querySelector("img").alt = `Still at ${fmtClock(s.wallclock_us)} UTC from ${s.source_name}`;
    li.querySelector("figcaption").textContent = `${fmtClock(s.wallclock_us, false)} · ${s.source_name} · frame ${s.frame_index} · pixels ${s.pixel_sha256.slice(0, 12)}…${s.decoder_concealed ? " · damaged frame: the decoder concealed errors" : s.bitstream_damaged ? " · damaged frame: decoded from damaged coded data" : ""}`;
    document.getElementById("stills-taken").prepend(li);
    status.textContent = `Still recorded (custody event #${s.event_seq}).`;
  });
  const clipForm = document.getElementById("clip-form");
  if (clipForm) {
    const now = () => (clock.dataset.us ? fmtClock(Number(clock.dataset.us)) : "");
    document.getElementById("mark-in").addEventListener("click", () => { document.getElementById("clip-from").value = now(); });
    document.getElementById("mark-out").addEventListener("click", () => { document.getElementById("clip-to").value = now(); });
    clipForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = clipForm.elements, day = list[0].start_us || 0;
      const a = parseClock(f.start.value, day), b = parseClock(f.end.value, day);
      if (a === null || b === null || b <= a) { status.textContent = "Give the clip's start and end clock times (end after start)."; return; }
      status.textContent = "Cutting the clip from the originals…";
      const r = await api("POST", `${apiBase}/clips`, { start: isoOf(a), end: isoOf(b), mode: f.mode.value });
      status.textContent = r.ok ? `Clip recorded: ${r.data.label}, ${r.data.clip_start} to ${r.data.clip_end}, ${r.data.frames} frames.`
                                : `Clip not made: ${r.data.detail || r.status}`;
    });
  }
  // what was watched, summarised once in the access audit trail when the page is left (not per frame)
  const watched = [];
  let runFrom = null;
  const mark = () => {
    const us = Number(clock.dataset.us);
    if (!us) return;
    if (runFrom === null) runFrom = us;
    const last = watched[watched.length - 1];
    if (last && us >= last[0] && us <= last[1] + 2 * US) last[1] = Math.max(last[1], us);
    else if (watched.length < 500) watched.push([us, us]);
  };
  for (const v of vids) v.addEventListener("timeupdate", mark);
  let stepped = 0, taken = 0;
  document.getElementById("frame-fwd").addEventListener("click", () => { stepped += 1; });
  document.getElementById("frame-back").addEventListener("click", () => { stepped += 1; });
  if (still) still.addEventListener("click", () => { taken += 1; });
  window.addEventListener("pagehide", () => {
    if (!watched.length && !stepped && !taken) return;
    const body = JSON.stringify({ csrf: csrf(), watched_us: watched, frames_stepped: stepped, stills_taken: taken });
    navigator.sendBeacon(`${apiBase}/view-sessions`, new Blob([body], { type: "application/json" }));
  });
  const want = Number(new URLSearchParams(window.location.search).get("t"));
  if (list.length) {
    if (want && list[0].timed) seekClock(want); else show(0, list[0].first_frame_time, false);
  }
  return { seekClock };
}

function initReview() {
  const section = document.getElementById("review");
  if (!section) return;
  const apiBase = section.dataset.api;
  const svg = document.getElementById("timeline");
  let player = null;
  const timeline = svg ? Timeline(svg, (us) => player && player.seekClock(us)) : null;
  if (document.getElementById("player")) player = Player(document.getElementById("player"), apiBase, timeline);
  if (timeline) api("GET", `${apiBase}/activity`).then((r) => { if (r.ok) timeline.activity(r.data.files); });
  const action = (id, url, statusId, busy, body) => {
    const b = document.getElementById(id);
    if (!b) return;
    b.addEventListener("click", async () => {
      const st = document.getElementById(statusId);
      b.disabled = true; st.textContent = busy;
      const r = await api("POST", url, body || {});
      if (r.ok) window.location.reload(); else { b.disabled = false; st.textContent = `Refused: ${r.data.detail || r.status}`; }
    });
  };
  action("prepare", `${apiBase}/review/prepare`, "prepare-status", "Making review copies and activity indexes…");
  action("make-sheet", `${apiBase}/contact-sheets`, "sheet-status", "Drawing contact sheets…");
}

document.addEventListener("DOMContentLoaded", initReview);
