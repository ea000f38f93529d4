// Shows the notes a MuseDance node returns (its UI "text": frames cut to the music, prompt cut,
// context length lowered, no beat found, ...) in a read-only box on the node, after each run.
// A run without notes removes the box. The same notes go to the server log.
import { app } from "../../scripts/app.js";
import { ComfyWidgets } from "../../scripts/widgets.js";

const NOTES = "musedance_notes";

function removeNotes(node) {
  const index = node.widgets?.findIndex((w) => w.name === NOTES) ?? -1;
  if (index >= 0) {
    node.widgets[index].onRemove?.();
    node.widgets.splice(index, 1);
  }
}

function showNotes(node, text) {
  removeNotes(node);
  if (!text) return;
  const widget = ComfyWidgets.STRING(node, NOTES, ["STRING", { multiline: true }], app).widget;
  widget.value = text;
  widget.serialize = false; // display only: never saved into the workflow or the prompt
  if (widget.inputEl) {
    widget.inputEl.readOnly = true;
    widget.inputEl.style.opacity = 0.8;
    widget.inputEl.title = "Notes from the last run";
  }
  node.setSize([node.size[0], Math.max(node.size[1], node.computeSize()[1])]);
  node.setDirtyCanvas?.(true, true);
}

app.registerExtension({
  name: "MuseDance.Notes",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData.name?.startsWith("MuseDance")) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      if (message && "text" in message) showNotes(this, (message.text ?? []).join("\n"));
    };
  },
});
