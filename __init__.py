"""ComfyUI entry point of MuseDance: registers the nodes, nothing else.

The nodes arrive with the node-pack issue; until then this pack loads and adds no node.
Nothing heavy is imported here, so the pack costs ComfyUI no start-up time.
"""
