#!/usr/bin/python3
"""RTSP camera emulator for tests and benchmarks (run with Debian's /usr/bin/python3, which has `gi`).

Serves live H.264 test patterns `cam1..camN` (wall-clock burnt in) and optional looped H.264 file
cameras on 127.0.0.1, so the recorder can be exercised against a real RTSP server. A loopback HTTP
control channel lets another process make a camera fail the ways real covert cameras do:

    POST /camera/<name>/stop   mount removed, its RTSP clients disconnected (client sees EOF, then refusal)
    POST /camera/<name>/stall  connection stays open but no RTP flows (valve drop=true)
    POST /camera/<name>/start  back to normal
    GET  /status               JSON: ports, per-camera state and the emulator's own times of each change

Answers carry `at`, the emulator's own time of the change; /status keeps each camera's last events (stop,
stall, start, each client's PLAY), so tests compare a recorder's gap bounds with the camera's own times.
Ready means serving: emulator.json (with the real ports; 0 = pick a free one) is written only after every
launch-line element exists (else exit 2 naming it and its Debian package), every line parses, and a DESCRIBE
of every mount answers 200 with an SDP. Imports without `gi`, so scripts/preflight.py reads the lines here.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

GLib = Gst = GstRtspServer = None  # bound by load_gi(); see the module doc

LIVE_LAUNCH = (
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=25/1 "
    '! clockoverlay time-format="%Y-%m-%d %H:%M:%S" {extra}'
    "! x264enc tune=zerolatency key-int-max=50 speed-preset=ultrafast "
    "! valve name=valve drop=false ! rtph264pay name=pay0 pt=96 config-interval=1 )"
)

# The file is an H.264 elementary stream (Annex B) looped forever by multifilesrc without re-encoding.
# Raw H.264 carries no timestamps, so a pad probe on `parse` stamps frame n with n * frame duration and
# clocksync paces the stream to real time (see Camera._on_media_configure).
FILE_LAUNCH = (
    "( multifilesrc location={path} loop=true ! h264parse name=parse "
    "! video/x-h264,stream-format=byte-stream,alignment=au "
    "! clocksync ! valve name=valve drop=false ! rtph264pay name=pay0 pt=96 config-interval=1 )"
)
LAUNCH_TEMPLATES = (LIVE_LAUNCH, FILE_LAUNCH)

# Debian package of every element the launch lines use (checked with `dpkg -S` on the plugin file that
# `gst-inspect-1.0 NAME` names; tests/test_preflight.py keeps this table honest and complete).
ELEMENT_PACKAGES = {
    "videotestsrc": "gstreamer1.0-plugins-base", "x264enc": "gstreamer1.0-plugins-ugly",
    "clockoverlay": "gstreamer1.0-x", "timeoverlay": "gstreamer1.0-x", "textoverlay": "gstreamer1.0-x",
    "rtph264pay": "gstreamer1.0-plugins-good", "multifilesrc": "gstreamer1.0-plugins-good",
    "h264parse": "gstreamer1.0-plugins-bad",
    **dict.fromkeys(("capsfilter", "valve", "clocksync", "identity", "queue"), "libgstreamer1.0-0"),  # core
}
# What the RTSP server itself needs beyond the launch lines (rtpbin for RTP sessions, appsink for TCP).
SERVER_ELEMENTS = {"rtpbin": "gstreamer1.0-plugins-good", "appsink": "gstreamer1.0-plugins-base",
                   "appsrc": "gstreamer1.0-plugins-base"}


def launch_elements(launch: str) -> list[str]:
    """Element factory names in a gst-launch line, in order (caps filters like video/x-raw,... are skipped)."""
    names: list[str] = []
    expect = True
    for tok in shlex.split(launch):
        if tok in ("!", "("):
            expect = True
        elif tok == ")":
            expect = False
        elif expect:
            expect = False
            if "/" not in tok and "=" not in tok and tok not in names:
                names.append(tok)
    return names


def checked_lines(extra_elements: tuple[str, ...] = ()) -> list[str]:
    """Every launch line this emulator can serve (templates filled in), for the preflight and the start check."""
    extra = "".join(f"! {e} " for e in extra_elements)
    return [LIVE_LAUNCH.format(extra=extra), FILE_LAUNCH.format(path='"/nonexistent.h264"')]


def package_hint(element: str) -> str:
    pkg = ELEMENT_PACKAGES.get(element) or SERVER_ELEMENTS.get(element)
    if pkg:
        return f"install Debian package {pkg}"
    return f"Debian package unknown: find it with `apt-file search libgst` or add {element!r} to ELEMENT_PACKAGES"


def load_gi() -> None:
    global GLib, Gst, GstRtspServer
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib as _glib
    from gi.repository import Gst as _gst
    from gi.repository import GstRtspServer as _server

    GLib, Gst, GstRtspServer = _glib, _gst, _server
    Gst.init(None)


def fail(msg: str) -> SystemExit:
    print(f"camera_emulator: {msg}", file=sys.stderr, flush=True)
    return SystemExit(2)


def check_launch(name: str, launch: str) -> None:
    """Refuse to serve a line that cannot run: GstRtspServer would only answer DESCRIBE with 503 later."""
    missing = [e for e in launch_elements(launch) if Gst.ElementFactory.find(e) is None]
    if missing:
        raise fail("; ".join(f"camera {name}: missing GStreamer element {e} ({package_hint(e)})" for e in missing))
    try:
        Gst.parse_launch(launch).set_state(Gst.State.NULL)
    except GLib.Error as exc:
        raise fail(f"camera {name}: launch line does not parse ({exc.message}): {launch}") from None


class Camera:
    """One mount point plus the media objects currently serving it."""

    def __init__(self, name: str, launch: str) -> None:
        self.name, self.launch, self.state = name, launch, "running"
        self.events: deque[tuple[float, str]] = deque(maxlen=50)
        self.medias: list = []
        self.errors: list[str] = []
        self.factory = GstRtspServer.RTSPMediaFactory()
        self.factory.set_launch(launch)
        self.factory.set_shared(True)
        # A live camera cannot seek. Without this, a client joining the shared media with PLAY Range: npt=0-
        # (as ffmpeg does) seeks the pipeline and freezes everyone else's stream for ~2 s.
        self.factory.set_publish_clock_mode(GstRtspServer.RTSPPublishClockMode.CLOCK_AND_OFFSET)
        self.factory.connect("media-configure", self._on_media_configure)

    def _on_media_configure(self, _factory: object, media: object) -> None:
        self.medias.append(media)
        media.connect("unprepared", lambda m: self.medias.remove(m) if m in self.medias else None)
        pipeline = media.get_element().get_parent()
        if pipeline is not None:  # keep the reason a pipeline fails, for the readiness check's message
            bus = pipeline.get_bus()
            bus.enable_sync_message_emission()
            bus.connect("sync-message::error", lambda _b, msg: self.errors.append(msg.parse_error()[0].message))
        self._apply_valve(media)
        parse = media.get_element().get_by_name("parse")
        if parse is not None:
            frames = [0]

            def stamp(_pad: object, info: object) -> object:
                buf = info.get_buffer()
                dur = buf.duration if buf.duration != Gst.CLOCK_TIME_NONE else Gst.SECOND // 25
                buf.pts = buf.dts = frames[0] * dur
                frames[0] += 1
                return Gst.PadProbeReturn.OK

            parse.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, stamp)

    def _apply_valve(self, media: object) -> None:
        element = media.get_element()
        valve = element.get_by_name("valve") if element is not None else None
        if valve is not None:
            valve.set_property("drop", self.state == "stalled")

    def set_stalled(self, stalled: bool) -> None:
        self.state = "stalled" if stalled else "running"
        for media in list(self.medias):
            self._apply_valve(media)


class Emulator:
    def __init__(self, port: int, cameras: dict[str, str]) -> None:
        self.server = GstRtspServer.RTSPServer()
        self.server.set_address("127.0.0.1")
        self.server.set_service(str(port))
        self.mounts = self.server.get_mount_points()
        self.cameras = {name: Camera(name, launch) for name, launch in cameras.items()}
        for cam in self.cameras.values():
            self.mounts.add_factory(f"/{cam.name}", cam.factory)
        self.server.connect("client-connected", self._on_client)
        if self.server.attach(None) == 0:
            raise fail(f"cannot listen on 127.0.0.1:{port} (port in use?)")

    @property
    def port(self) -> int:
        return self.server.get_bound_port()

    def _on_client(self, _server: object, client: object) -> None:
        client.connect("play-request", self._on_play)

    def _on_play(self, _client: object, ctx: object) -> None:
        path = ctx.uri.abspath if ctx.uri is not None else ""
        cam = self.cameras.get(path.strip("/").split("/", 1)[0])
        if cam is not None:
            cam.events.append((time.time(), "play"))

    def _disconnect(self, cam: Camera) -> None:
        """Close every RTSP client holding a session on `cam` (each recorder has its own connection)."""
        path = f"/{cam.name}"

        def client_filter(_server: object, client: object, _data: object = None) -> object:
            hit = []

            def session_filter(_c: object, session: object, _d: object = None) -> object:
                matched, _ = session.get_media(path)
                if matched is not None:
                    hit.append(session)
                return GstRtspServer.RTSPFilterResult.KEEP

            client.session_filter(session_filter, None)
            return GstRtspServer.RTSPFilterResult.REMOVE if hit else GstRtspServer.RTSPFilterResult.KEEP

        self.server.client_filter(client_filter, None)

    def control(self, name: str, action: str) -> dict:
        cam = self.cameras.get(name)
        if cam is None:
            raise KeyError(f"unknown camera {name!r}; have {sorted(self.cameras)}")
        if action == "stop":
            if cam.state != "stopped":
                self.mounts.remove_factory(f"/{name}")
                cam.state = "stopped"
                self._disconnect(cam)
        elif action == "stall":
            if cam.state == "stopped":
                self.mounts.add_factory(f"/{name}", cam.factory)
            cam.set_stalled(True)
        elif action == "start":
            if cam.state == "stopped":
                self.mounts.add_factory(f"/{name}", cam.factory)
            cam.set_stalled(False)
        else:
            raise ValueError(f"unknown action {action!r}; use stop, start or stall")
        at = time.time()
        cam.events.append((at, action))
        return {"camera": name, "state": cam.state, "at": at}

    def status(self) -> dict:
        return {"rtsp_port": self.port, "pid": os.getpid(), "cameras": {n: c.state for n, c in self.cameras.items()},
                "events": {n: list(c.events) for n, c in self.cameras.items()}}


def describe(port: int, name: str, timeout: float = 10.0) -> tuple[str, str]:
    """Status line and body of an RTSP DESCRIBE, as any client would send it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s, s.makefile("rb") as f:
        s.sendall(f"DESCRIBE rtsp://127.0.0.1:{port}/{name} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n"
                  .encode())
        status, headers = f.readline().decode(errors="replace").strip(), {}
        while line := f.readline().decode(errors="replace").strip():
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        return status, f.read(int(headers.get("content-length", 0))).decode(errors="replace")


def self_check(emu: Emulator) -> str | None:
    """None if every mount answers DESCRIBE with an SDP carrying video, else what failed. Waits until the
    check's media is released, so the first real client never meets a media still being torn down (503)."""
    for cam in emu.cameras.values():
        try:
            status, sdp = describe(emu.port, cam.name)
        except OSError as exc:
            return f"camera {cam.name}: RTSP DESCRIBE failed: {exc}"
        if " 200 " not in f"{status} " or "m=video" not in sdp:
            why = f"; pipeline error: {'; '.join(dict.fromkeys(cam.errors))}" if cam.errors else ""
            return f"camera {cam.name}: RTSP DESCRIBE answered {status!r}{why}; launch line: {cam.launch}"
        deadline = time.monotonic() + 10
        while cam.medias and time.monotonic() < deadline:
            time.sleep(0.01)  # condition poll on the main loop's 'unprepared' signal
    return None


def run_in_main_loop(func, *args):  # type: ignore[no-untyped-def]
    """GStreamer objects belong to the GLib main loop; HTTP threads hand work over and wait."""
    done = threading.Event()
    box: dict = {}

    def call() -> bool:
        try:
            box["value"] = func(*args)
        except Exception as exc:  # noqa: BLE001 - reported to the HTTP client
            box["error"] = exc
        done.set()
        return False

    GLib.idle_add(call)
    if not done.wait(10):
        raise TimeoutError("emulator main loop did not answer within 10 s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def make_handler(emu: Emulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/status":
                self._send(200, run_in_main_loop(emu.status))
            else:
                self._send(404, {"error": f"no such path {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            parts = self.path.strip("/").split("/")
            if len(parts) != 3 or parts[0] != "camera":
                self._send(404, {"error": "use POST /camera/<name>/<stop|start|stall>"})
                return
            try:
                self._send(200, run_in_main_loop(emu.control, parts[1], parts[2]))
            except KeyError as exc:
                self._send(404, {"error": str(exc.args[0])})
            except ValueError as exc:
                self._send(400, {"error": str(exc)})

        def log_message(self, fmt: str, *args: object) -> None:
            sys.stderr.write("control: " + fmt % args + "\n")

    return Handler


def camera_lines(args: argparse.Namespace, ap: argparse.ArgumentParser) -> dict[str, str]:
    live = checked_lines(tuple(args.extra_element))[0]  # --extra-element: test hook for a line that cannot run
    cams = {f"cam{i}": live for i in range(1, args.cameras + 1)}
    for spec in args.file_camera:
        name, sep, path = spec.partition("=")
        if not sep or not Path(path).is_file():
            ap.error(f"--file-camera wants NAME=PATH to an existing file, got {spec!r}")
        cams[name] = FILE_LAUNCH.format(path=json.dumps(str(Path(path).resolve())))
    return cams


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0, help="RTSP port (0 = free port)")
    ap.add_argument("--control-port", type=int, default=0, help="HTTP control port (0 = free port)")
    ap.add_argument("--cameras", type=int, default=1, help="number of live test-pattern cameras cam1..camN")
    ap.add_argument("--file-camera", action="append", default=[], metavar="NAME=PATH",
                    help="extra camera looping an H.264 elementary stream (.h264) without re-encoding")
    ap.add_argument("--extra-element", action="append", default=[], metavar="ELEMENT",
                    help="(tests) add this element, with any properties, to the live cameras' launch line")
    ap.add_argument("--state-dir", type=Path, required=True, help="where emulator.json is written when ready")
    args = ap.parse_args(argv)
    try:
        load_gi()
    except (ImportError, ValueError) as exc:
        raise fail(f"GStreamer Python bindings unavailable ({exc}); install Debian packages python3-gi "
                   "gir1.2-gst-rtsp-server-1.0") from None
    cams = camera_lines(args, ap)
    for name, launch in cams.items():
        check_launch(name, launch)
    emu = Emulator(args.port, cams)
    try:
        httpd = ThreadingHTTPServer(("127.0.0.1", args.control_port), make_handler(emu))
    except OSError as exc:
        raise fail(f"cannot listen on 127.0.0.1:{args.control_port} for control ({exc.strerror})") from None
    threading.Thread(target=httpd.serve_forever, daemon=True, name="control").start()
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, lambda *_: (loop.quit(), False)[1])
    outcome: dict = {}

    def become_ready() -> None:
        problem = self_check(emu)
        if problem is not None:
            outcome["error"] = problem
            GLib.idle_add(loop.quit)
            return
        args.state_dir.mkdir(parents=True, exist_ok=True)
        info = {"pid": os.getpid(), "rtsp_port": emu.port, "control_port": httpd.server_address[1],
                "cameras": sorted(cams)}
        tmp = args.state_dir / "emulator.json.tmp"
        tmp.write_text(json.dumps(info))
        os.replace(tmp, args.state_dir / "emulator.json")
        print(f"camera_emulator ready: {json.dumps(info)}", flush=True)

    threading.Thread(target=become_ready, daemon=True, name="self-check").start()
    try:
        loop.run()
    finally:
        httpd.shutdown()
    if "error" in outcome:
        raise fail(f"not serving: {outcome['error']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
