"""Headless ComfyUI client for MuseDance: upload an image and a song, run the example workflow,
download the mp4. Standard library only.

    python example_workflows/api/api_client.py --server http://127.0.0.1:8188 \
        --image me.png --music song.mp3 --prompt "spins on every downbeat" --seconds 6 --out dance.mp4

It reads ``example_workflows/api/musedance_dance.json``, points its LoadImage/LoadAudio nodes at the
uploaded files, sets the prompt, length and size, submits it to ``POST /prompt``, polls
``GET /history/{id}`` and fetches the video with ``GET /view``.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

WORKFLOW = Path(__file__).resolve().parent / "musedance_dance.json"


def upload(server: str, path: Path) -> str:
    """Upload a file to ComfyUI's input folder (the endpoint takes audio as well as images)."""
    boundary = uuid.uuid4().hex
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: {mime}\r\n\r\n").encode() + path.read_bytes() + (
            f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\ntrue\r\n"
            f"--{boundary}--\r\n").encode()
    request = urllib.request.Request(f"{server}/upload/image", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)["name"]


def submit(server: str, workflow: dict) -> str:
    request = urllib.request.Request(f"{server}/prompt", data=json.dumps({"prompt": workflow}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)["prompt_id"]
    except urllib.error.HTTPError as exc:  # 400: the workflow did not validate; the body says why
        raise SystemExit(f"ComfyUI refused the workflow: {exc.read().decode()[:2000]}") from exc


def wait(server: str, prompt_id: str, timeout: float) -> dict:
    """Poll the history until the prompt finished; raise with ComfyUI's message if it failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{server}/history/{prompt_id}", timeout=30) as response:
            history = json.load(response)
        if prompt_id in history:
            entry = history[prompt_id]
            if entry["status"]["status_str"] != "success":
                errors = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
                detail = errors[0]["exception_message"] if errors else entry["status"]
                raise SystemExit(f"the workflow failed: {detail}")
            return entry
        time.sleep(1.0)
    raise SystemExit(f"no result after {timeout:.0f} s (prompt {prompt_id}); is the server busy?")


def download_video(server: str, entry: dict, out: Path) -> Path:
    for output in entry["outputs"].values():
        for item in output.get("images", []) + output.get("videos", []):
            if item["filename"].endswith(".mp4"):
                query = urllib.parse.urlencode({k: item[k] for k in ("filename", "subfolder", "type")})
                with urllib.request.urlopen(f"{server}/view?{query}", timeout=60) as response:
                    out.write_bytes(response.read())
                return out
    raise SystemExit("the workflow finished but produced no mp4")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Run the MuseDance example workflow on a ComfyUI server.")
    p.add_argument("--server", default="http://127.0.0.1:8188")
    p.add_argument("--image", type=Path, required=True)
    p.add_argument("--music", type=Path, required=True)
    p.add_argument("--prompt", default=None, help="motion description (default: the workflow's)")
    p.add_argument("--start", type=float, default=0.0, help="music start in seconds")
    p.add_argument("--seconds", type=float, default=4.0, help="length of the video in seconds")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--size", type=int, default=None, help="width and height")
    p.add_argument("--bundle", default=None, help="bundle name in models/musedance (default: the workflow's)")
    p.add_argument("--out", type=Path, default=Path("musedance.mp4"))
    p.add_argument("--timeout", type=float, default=3600.0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server = args.server.rstrip("/")
    workflow = json.loads(WORKFLOW.read_text())
    by_type = {node["class_type"]: node["inputs"] for node in workflow.values()}
    by_type["LoadImage"]["image"] = upload(server, args.image)
    by_type["LoadAudio"]["audio"] = upload(server, args.music)
    by_type["TrimAudioDuration"].update(start_index=args.start, duration=args.seconds)
    animate = by_type["MuseDanceAnimateImage"]
    if args.prompt is not None:
        animate["prompt"] = args.prompt
    if args.steps is not None:
        animate["steps"] = args.steps
    if args.size is not None:
        animate["width"] = animate["height"] = args.size
    if args.bundle is not None:
        by_type["MuseDanceModelLoader"]["bundle"] = args.bundle
    prompt_id = submit(server, workflow)
    print(f"queued {prompt_id}", file=sys.stderr)
    out = download_video(server, wait(server, prompt_id, args.timeout), args.out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
