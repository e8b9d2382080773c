"""ONNX graph helpers that the export (export_onnx.py) and the fusion passes (fuse_graph.py) both use."""


def light_copy(model):
    """The model with its large weights turned into graph inputs, for inference passes that serialize it."""
    import numpy as np
    import onnx

    light = onnx.ModelProto()
    light.ir_version, light.producer_name = model.ir_version, model.producer_name
    light.opset_import.extend(model.opset_import)
    light.graph.name = model.graph.name
    light.graph.node.extend(model.graph.node)
    light.graph.input.extend(model.graph.input)
    light.graph.output.extend(model.graph.output)
    for t in model.graph.initializer:
        if len(t.dims) and int(np.prod(t.dims)) > 64:
            light.graph.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        else:
            light.graph.initializer.append(t)
    return light


def prune_dead_nodes(graph) -> int:
    """Drops nodes (and initializers) nothing reads any more; returns how many nodes went."""
    live = {o.name for o in graph.output}
    dead = []
    for i in reversed(range(len(graph.node))):
        node = graph.node[i]
        if any(o in live for o in node.output):
            live.update(x for x in node.input if x)
        else:
            dead.append(i)
    for i in dead:  # descending, so each index still points at its node
        del graph.node[i]
    for i in reversed(range(len(graph.initializer))):
        if graph.initializer[i].name not in live:
            del graph.initializer[i]
    return len(dead)
