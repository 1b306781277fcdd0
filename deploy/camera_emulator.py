#!/usr/bin/python3
"""RTSP camera emulator for tests and benchmarks (run with Debian's /usr/bin/python3, which has `gi`).

Serves live H.264 test patterns `cam1..camN` (wall-clock burnt in) and optional looped H.264 file
cameras on 127.0.0.1, so the recorder can be exercised against a real RTSP server. A loopback HTTP
control channel lets another process make a camera fail the ways real covert cameras do:

    POST /camera/<name>/stop   mount removed, its RTSP clients disconnected (client sees EOF, then refusal)
    POST /camera/<name>/stall  connection stays open but no RTP flows (valve drop=true)
    POST /camera/<name>/start  back to normal
    GET  /status               JSON: ports and per-camera state

Ports of 0 mean "pick a free one"; the real ports are written to `<state-dir>/emulator.json` only when
both servers are listening, which is the readiness signal `pipeline.capture.emulator_control` waits on.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

LIVE_LAUNCH = (
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=25/1 "
    '! clockoverlay time-format="%Y-%m-%d %H:%M:%S" '
    "! x264enc tune=zerolatency key-int-max=50 speed-preset=ultrafast "
    "! valve name=valve drop=false ! rtph264pay name=pay0 pt=96 config-interval=1 )"
)

# The file is an H.264 elementary stream (Annex B) looped forever by multifilesrc without re-encoding.
# Raw H.264 carries no timestamps, so a pad probe on `parse` stamps frame n with n * frame duration and
# clocksync paces the stream to real time (see Camera._stamp).
FILE_LAUNCH = (
    "( multifilesrc location={path} loop=true ! h264parse name=parse "
    "! video/x-h264,stream-format=byte-stream,alignment=au "
    "! clocksync ! valve name=valve drop=false ! rtph264pay name=pay0 pt=96 config-interval=1 )"
)


class Camera:
    """One mount point plus the media objects currently serving it."""

    def __init__(self, name: str, launch: str) -> None:
        self.name = name
        self.state = "running"
        self.medias: list[GstRtspServer.RTSPMedia] = []
        self.factory = GstRtspServer.RTSPMediaFactory()
        self.factory.set_launch(launch)
        self.factory.set_shared(True)
        self.factory.connect("media-configure", self._on_media_configure)

    def _on_media_configure(self, _factory: object, media: GstRtspServer.RTSPMedia) -> None:
        self.medias.append(media)
        media.connect("unprepared", lambda m: self.medias.remove(m) if m in self.medias else None)
        self._apply_valve(media)
        parse = media.get_element().get_by_name("parse")
        if parse is not None:
            frames = [0]

            def stamp(_pad: object, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
                buf = info.get_buffer()
                dur = buf.duration if buf.duration != Gst.CLOCK_TIME_NONE else Gst.SECOND // 25
                buf.pts = buf.dts = frames[0] * dur
                frames[0] += 1
                return Gst.PadProbeReturn.OK

            parse.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, stamp)

    def _apply_valve(self, media: GstRtspServer.RTSPMedia) -> None:
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
        if self.server.attach(None) == 0:
            raise SystemExit(f"camera_emulator: cannot listen on 127.0.0.1:{port} (port in use?)")

    @property
    def port(self) -> int:
        return self.server.get_bound_port()

    def _disconnect(self, cam: Camera) -> None:
        """Close every RTSP client holding a session on `cam` (each recorder has its own connection)."""
        path = f"/{cam.name}"

        def client_filter(_server: object, client: GstRtspServer.RTSPClient, _data: object = None) -> object:
            hit = []

            def session_filter(_c: object, session: GstRtspServer.RTSPSession, _d: object = None) -> object:
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
        return {"camera": name, "state": cam.state}

    def status(self) -> dict:
        return {"rtsp_port": self.port, "pid": os.getpid(),
                "cameras": {n: c.state for n, c in self.cameras.items()}}


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0, help="RTSP port (0 = free port)")
    ap.add_argument("--control-port", type=int, default=0, help="HTTP control port (0 = free port)")
    ap.add_argument("--cameras", type=int, default=1, help="number of live test-pattern cameras cam1..camN")
    ap.add_argument("--file-camera", action="append", default=[], metavar="NAME=PATH",
                    help="extra camera looping an H.264 elementary stream (.h264) without re-encoding")
    ap.add_argument("--state-dir", type=Path, required=True, help="where emulator.json is written when ready")
    args = ap.parse_args(argv)

    Gst.init(None)
    cams = {f"cam{i}": LIVE_LAUNCH for i in range(1, args.cameras + 1)}
    for spec in args.file_camera:
        name, sep, path = spec.partition("=")
        if not sep or not Path(path).is_file():
            ap.error(f"--file-camera wants NAME=PATH to an existing file, got {spec!r}")
        cams[name] = FILE_LAUNCH.format(path=json.dumps(str(Path(path).resolve())))
    emu = Emulator(args.port, cams)
    httpd = ThreadingHTTPServer(("127.0.0.1", args.control_port), make_handler(emu))
    threading.Thread(target=httpd.serve_forever, daemon=True, name="control").start()

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, lambda *_: (loop.quit(), False)[1])

    args.state_dir.mkdir(parents=True, exist_ok=True)
    info = {"pid": os.getpid(), "rtsp_port": emu.port, "control_port": httpd.server_address[1],
            "cameras": sorted(cams)}
    tmp = args.state_dir / "emulator.json.tmp"
    tmp.write_text(json.dumps(info))
    os.replace(tmp, args.state_dir / "emulator.json")
    print(f"camera_emulator ready: {json.dumps(info)}", flush=True)
    try:
        loop.run()
    finally:
        httpd.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
