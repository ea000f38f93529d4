"""Keep the example workflows' two formats in step.

ComfyUI has two workflow formats: the API format (``{id: {class_type, inputs}}``, what
``POST /prompt`` takes) and the UI format (LiteGraph: nodes with positions, sockets, links and
positional ``widgets_values``, what the frontend opens). The API files in ``example_workflows/api/`` are
the source; this script writes their UI twins in ``example_workflows/`` using the node definitions of a
running ComfyUI (``/object_info``), and the tests convert the UI files back to check both agree.

    python -m scripts.workflow_formats --server http://127.0.0.1:8188   # rewrite example_workflows/*.json
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from pathlib import Path

WORKFLOWS = Path(__file__).resolve().parents[1] / "example_workflows"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# Extra widget values the frontend stores after the file name of upload widgets.
UPLOAD_EXTRAS = {"image_upload": ["image"], "audio_upload": [None, None]}
COLUMN_WIDTH, ROW_GAP, NODE_WIDTH = 380, 80, 340
# Heights the frontend grows these nodes to once they show a preview (so neighbours don't overlap).
NODE_HEIGHTS = {"LoadImage": 340, "PreviewImage": 260, "SaveImage": 300, "SaveVideo": 480,
                "MuseDanceAnimateImage": 720, "MuseDanceMusicEncoder": 240}


def _inputs(info: dict) -> list[tuple[str, object, dict]]:
    """(name, type, options) of a node's inputs in the frontend's order (required, then optional)."""
    order = info.get("input_order") or {}
    out = []
    for group in ("required", "optional"):
        specs = info["input"].get(group, {})
        for name in order.get(group, list(specs)):
            spec = specs[name]
            out.append((name, spec[0], spec[1] if len(spec) > 1 else {}))
    return out


def is_widget(kind: object) -> bool:
    return isinstance(kind, list) or kind in WIDGET_TYPES


def ui_to_api(ui: dict, object_info: dict) -> dict:
    """Convert a UI-format workflow to the API format (what the frontend's 'Export (API)' does)."""
    links = {link[0]: link for link in ui.get("links", [])}  # id -> [id, from, from_slot, to, to_slot, type]
    api = {}
    for node in ui["nodes"]:
        if node.get("mode", 0) in (2, 4) or node["type"] not in object_info:  # muted / bypassed / notes
            continue
        linked = {i["name"]: links[i["link"]] for i in node.get("inputs", []) if i.get("link") is not None}
        values = list(node.get("widgets_values", []))
        inputs = {}
        for name, kind, options in _inputs(object_info[node["type"]]):
            if is_widget(kind):
                value = values.pop(0) if values else options.get("default")
                if options.get("control_after_generate"):
                    values = values[1:]  # the "fixed/randomize" companion widget
                inputs[name] = value
            if name in linked:
                link = linked[name]
                inputs[name] = [str(link[1]), link[2]]
        api[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return api


def api_to_ui(api: dict, object_info: dict) -> dict:
    """Lay out an API-format workflow as a UI-format one, columns by dependency depth."""
    depth: dict[str, int] = {}

    def level(node_id: str) -> int:
        if node_id not in depth:
            parents = [v[0] for v in api[node_id]["inputs"].values() if isinstance(v, list)]
            depth[node_id] = 1 + max((level(p) for p in parents), default=-1)
        return depth[node_id]

    rows: dict[int, int] = {}
    nodes, links = [], []
    out_links: dict[tuple[str, int], list[int]] = {}
    for order, (node_id, node) in enumerate(sorted(api.items(), key=lambda kv: (level(kv[0]), int(kv[0])))):
        info = object_info[node["class_type"]]
        inputs, widgets = [], []
        for name, kind, options in _inputs(info):
            value = node["inputs"].get(name, options.get("default"))
            entry = None
            if isinstance(value, list):  # a link
                link_id = len(links) + 1
                src, slot = value
                links.append([link_id, int(src), slot, int(node_id), len(inputs),
                              object_info[api[src]["class_type"]]["output"][slot]])
                out_links.setdefault((src, slot), []).append(link_id)
                entry = {"name": name, "type": "COMBO" if isinstance(kind, list) else kind, "link": link_id}
            elif not is_widget(kind):
                entry = {"name": name, "type": kind, "link": None}
            if entry is not None:
                if is_widget(kind):
                    entry["widget"] = {"name": name}
                inputs.append(entry)
            if is_widget(kind):
                widgets.append(options.get("default") if isinstance(value, list) else value)  # linked: the default, as the frontend keeps it
                if options.get("control_after_generate"):
                    widgets.append("fixed")
                for flag, extra in UPLOAD_EXTRAS.items():
                    if options.get(flag):
                        widgets.extend(extra)
        column = level(node_id)
        row = rows.get(column, 0)
        height = NODE_HEIGHTS.get(node["class_type"], 60 + 26 * (len(widgets) + max(len(inputs), len(info["output"]))))
        rows[column] = row + height + ROW_GAP
        pos = node.get("_meta", {}).get("pos") or [40 + column * COLUMN_WIDTH, 40 + row]  # a hand layout wins
        nodes.append({
            "id": int(node_id), "type": node["class_type"], "pos": list(pos),
            "size": [NODE_WIDTH, height], "flags": {}, "order": order, "mode": 0,
            "inputs": inputs, "outputs": [], "properties": {"Node name for S&R": node["class_type"]},
            "widgets_values": widgets,
            **({"title": node["_meta"]["title"]} if node.get("_meta", {}).get("title") else {}),
        })
    for ui_node in nodes:
        info = object_info[ui_node["type"]]
        ui_node["outputs"] = [{"name": name, "type": kind, "slot_index": slot,
                               "links": out_links.get((str(ui_node["id"]), slot), [])}
                              for slot, (name, kind) in enumerate(zip(info["output_name"], info["output"]))]
    return {"last_node_id": max(n["id"] for n in nodes), "last_link_id": len(links), "nodes": nodes,
            "links": links, "groups": [], "config": {}, "extra": {}, "version": 0.4}


def strip_meta(api: dict) -> dict:
    return {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in api.items()}


def fetch_object_info(server: str) -> dict:
    with urllib.request.urlopen(f"{server.rstrip('/')}/object_info", timeout=30) as response:
        return json.load(response)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", required=True, help="URL of a running ComfyUI with this pack loaded")
    args = parser.parse_args()
    info = fetch_object_info(args.server)
    for api_file in sorted((WORKFLOWS / "api").glob("*.json")):
        api = json.loads(api_file.read_text())
        ui = api_to_ui(api, info)
        assert strip_meta(api) == ui_to_api(ui, info), f"{api_file.name}: round trip differs"
        (WORKFLOWS / api_file.name).write_text(json.dumps(ui, indent=1) + "\n")
        print(f"wrote example_workflows/{api_file.name}")


if __name__ == "__main__":
    main()
