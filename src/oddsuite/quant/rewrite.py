"""Graph changes made for the int8 model before and while it is quantized.

:func:`nearest_upsample_as_expand` is exact: it changes how ONNX Runtime runs the int8 model,
never what it computes, and is applied only to the graph that is quantized (the fp32 model
keeps the graph that is fastest for it). :func:`concat_scale_groups` is not: it coarsens some
tensors' quantization for speed, and runs only when asked (``share_concat_scales``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

#: the Resize attributes the rewrite reproduces exactly for an integer scale k: output index i
#: reads input index floor(i / k) (ONNX Resize, ``asymmetric`` coordinates, ``floor`` rounding),
#: which is what torch exports for ``nn.Upsample(scale_factor=k, mode="nearest")``
_NEAREST = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
#: ONNX defaults of those attributes when absent
_DEFAULTS = {"mode": "nearest", "coordinate_transformation_mode": "half_pixel", "nearest_mode": "round_prefer_floor"}


def _constants(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    out = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            out[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return out


def _static_chw(graph, name: str) -> tuple[int, int, int] | None:
    """(C, H, W) of a rank-4 tensor whose last three dimensions are known, else None."""
    for v in list(graph.value_info) + list(graph.input) + list(graph.output):
        if v.name != name:
            continue
        dims = v.type.tensor_type.shape.dim
        if len(dims) != 4:
            return None
        vals = [d.dim_value if d.HasField("dim_value") else 0 for d in dims[1:]]
        return tuple(vals) if all(x > 0 for x in vals) else None  # type: ignore[return-value]
    return None


def _names_read(graph) -> set[str]:
    """Every tensor name a node of ``graph`` or of its subgraphs (If/Loop/Scan bodies) reads,
    plus the graph's inputs and outputs."""
    from onnx import AttributeProto

    names = {v.name for v in list(graph.input) + list(graph.output)}
    for n in graph.node:
        names.update(i for i in n.input if i)
        for a in n.attribute:
            if a.type == AttributeProto.GRAPH:
                names |= _names_read(a.g)
            elif a.type == AttributeProto.GRAPHS:
                for sub in a.graphs:
                    names |= _names_read(sub)
    return names


def _integer_scale(scales: np.ndarray | None) -> tuple[int, int] | None:
    if scales is None or scales.shape != (4,) or scales[0] != 1 or scales[1] != 1:
        return None
    kh, kw = float(scales[2]), float(scales[3])
    if kh != int(kh) or kw != int(kw) or kh < 1 or kw < 1 or (kh == 1 and kw == 1):
        return None
    return int(kh), int(kw)


def nearest_upsample_as_expand(model) -> list[dict[str, Any]]:
    """Rewrite, in place, each nearest-neighbour ``Resize`` of ``model`` (an ``onnx.ModelProto``
    with shapes inferred) that upsamples an (N, C, H, W) tensor by integer factors (kh, kw)
    (constant ``scales`` [1, 1, kh, kw], attributes :data:`_NEAREST`, C/H/W known) as

    ``Transpose`` to NHWC, ``Reshape`` (N, H, 1, W, 1, C), ``Expand`` (N, H, kh, W, kw, C),
    ``Reshape`` (N, H*kh, W*kw, C), ``Transpose`` back to NCHW:

    ``y[n, c, i, j] = x[n, c, i // kh, j // kw]``, the same values (a copy). Why: ONNX Runtime
    runs its int8 convolutions channels-last and moves each uint8 ``Resize`` there too, where it
    has no fast path (0.3 ms of yolov8n's 9 ms at 320 px on one thread, against 0.02 ms for the
    same Resize channels-first); after this rewrite its transpose optimiser cancels both
    ``Transpose`` nodes against its own layout transposes, and the ``Expand`` copies whole
    channel rows (0.02 ms). The new nodes are named ``<resize name>/ToNHWC``, ``/Reshape_in``,
    ``/Expand``, ``/Reshape_out``, ``/ToNCHW`` (an unnamed or repeated name gets a unique
    prefix) and the output keeps its name, so a ``keep_float`` pattern that searches for the
    Resize's name finds its parts (one anchored at the end, ``Resize$``, does not). Scales and
    roi tensors that nothing else reads are removed (kept when they are graph inputs).

    Returns one ``{"node", "scale": [kh, kw], "chw": [C, H, W]}`` per rewritten Resize; a Resize
    that does not match (other modes, ``sizes`` input, unknown shape) is left as it is.
    """
    from onnx import helper, numpy_helper

    g = model.graph
    consts = _constants(g)
    new_nodes, done, freed = [], [], set()
    taken = {n.name for n in g.node} | {i.name for i in g.initializer} | {o for n in g.node for o in n.output}
    prefixes: set[str] = set()
    for n in g.node:
        if n.op_type != "Resize" or n.domain not in ("", "ai.onnx"):
            new_nodes.append(n)
            continue
        attrs = {**_DEFAULTS, **{a.name: helper.get_attribute_value(a) for a in n.attribute}}
        attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
        scales = consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        k = _integer_scale(scales)
        chw = _static_chw(g, n.input[0])
        sizes_given = len(n.input) > 3 and bool(n.input[3])
        if (any(attrs.get(a) != v for a, v in _NEAREST.items()) or k is None or chw is None or sizes_given
                or int(attrs.get("antialias", 0)) or attrs.get("axes")):
            new_nodes.append(n)
            continue
        (kh, kw), (c, h, w) = k, chw
        p, i = n.name or "Resize", 0
        while p in prefixes or (p != n.name and p in taken) or any(f"{p}/{x}" in taken for x in ("nhwc", "cells")):
            i += 1
            p = f"{n.name or 'Resize'}_{i}"
        prefixes.add(p)
        shapes = {"in": [-1, h, 1, w, 1, c], "expand": [1, h, kh, w, kw, c], "out": [-1, h * kh, w * kw, c]}
        names = {key: f"{p}/{key}_shape" for key in shapes}
        for key, shape in shapes.items():
            g.initializer.append(numpy_helper.from_array(np.array(shape, np.int64), names[key]))
        new_nodes += [
            helper.make_node("Transpose", [n.input[0]], [f"{p}/nhwc"], name=f"{p}/ToNHWC", perm=[0, 2, 3, 1]),
            helper.make_node("Reshape", [f"{p}/nhwc", names["in"]], [f"{p}/cells"], name=f"{p}/Reshape_in"),
            helper.make_node("Expand", [f"{p}/cells", names["expand"]], [f"{p}/copies"], name=f"{p}/Expand"),
            helper.make_node("Reshape", [f"{p}/copies", names["out"]], [f"{p}/up_nhwc"], name=f"{p}/Reshape_out"),
            helper.make_node("Transpose", [f"{p}/up_nhwc"], [n.output[0]], name=f"{p}/ToNCHW", perm=[0, 3, 1, 2]),
        ]
        done.append({"node": p, "scale": [kh, kw], "chw": [c, h, w]})
        freed.update(x for x in n.input[1:3] if x)  # roi, scales
    if done:
        # the scales (and roi) the Resizes read go too when nothing else reads them (ONNX Runtime
        # warns of unused initializers on every load); graph inputs and subgraphs' reads stay
        del g.node[:]
        g.node.extend(new_nodes)
        freed -= _names_read(g)
        new_nodes = list(g.node)
        del g.node[:]
        g.node.extend(m for m in new_nodes if not (m.op_type == "Constant" and m.output[0] in freed))
        kept = [i for i in g.initializer if i.name not in freed]
        del g.initializer[:]
        g.initializer.extend(kept)
    return done


#: operators that move or select values without arithmetic, so one scale can pass through them:
#: ONNX Runtime's QDQ quantizer gives most of them their input's scale; Expand it leaves float
#: between a DequantizeLinear and a QuantizeLinear, which ONNX Runtime removes when the two agree
_SAME_SCALE_OPS = frozenset({"Split", "Slice", "MaxPool", "Reshape", "Transpose", "Expand", "Resize", "Squeeze",
                             "Unsqueeze", "Flatten"})


def concat_scale_groups(qmodel, max_widening: float) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Scale sharing for the ``Concat`` nodes of a QDQ model ``qmodel`` (a first quantization,
    per-tensor 8-bit activations): tensors that must share one scale so that ONNX Runtime's
    ``QLinearConcat`` copies instead of requantizing (a table lookup per element) are grouped
    (each Concat's output with its inputs, through :data:`_SAME_SCALE_OPS`, transitively), and
    each group whose union range is at most ``max_widening`` times the narrowest member's own
    range gets that union as every member's calibrated range.

    Returns ``(overrides, groups)``: ``overrides`` in ONNX Runtime's ``TensorQuantOverrides`` form
    (``{tensor: [{"rmin", "rmax"}]}``, float32, for a second ``quantize_static``) and one
    ``{"tensors", "rmin", "rmax", "widening", "shared"}`` per group, for the record. A member's
    range is its ``QuantizeLinear``'s: ``((qmin - zp) * scale, (qmax - zp) * scale)`` over its
    type's integers (0..255 for uint8, -128..127 for int8).

    The price: members narrower than the union lose resolution (``widening`` 1.5 is about half a
    bit); groups that would widen more keep their own scales and their requantization.
    """
    from onnx import numpy_helper

    g = qmodel.graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    prod = {o: n for n in g.node for o in n.output}
    rng: dict[str, tuple[float, float]] = {}
    for n in g.node:
        if n.op_type == "QuantizeLinear" and n.input[1] in init and init[n.input[1]].size == 1:
            zp = init[n.input[2]] if len(n.input) > 2 and n.input[2] in init else np.array(0, np.uint8)
            lo, hi = np.iinfo(zp.dtype).min, np.iinfo(zp.dtype).max  # uint8 0..255, int8 -128..127
            s, z = float(init[n.input[1]]), int(zp)
            if s == 1.0 and z == 0:  # ONNX Runtime's parameters for a tensor calibrated all zero:
                continue             # its range is not (lo, hi), so it is left out (and its group)
            rng[n.input[0]] = ((lo - z) * s, (hi - z) * s)

    def float_source(t: str) -> str:  # DequantizeLinear(QuantizeLinear(x)) -> x; a float tensor -> itself
        dq = prod.get(t)
        q = prod.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        return q.input[0] if q is not None and q.op_type == "QuantizeLinear" else t

    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    concat_outputs, concat_inputs = set(), set()
    for n in g.node:
        if n.op_type == "Concat" and n.output[0] in rng:
            concat_outputs.add(n.output[0])
            for i in n.input:
                concat_inputs.add(float_source(i))
                union(float_source(i), n.output[0])
    for n in g.node:  # carry the groups through value-moving operators, quantized or float between
        if n.op_type in _SAME_SCALE_OPS and n.input:
            for o in n.output:
                union(float_source(n.input[0]), o)
    members: dict[str, list[str]] = {}
    for t in parent:
        members.setdefault(find(t), []).append(t)
    overrides: dict[str, list[dict[str, Any]]] = {}
    groups = []
    for mem in members.values():
        if not concat_outputs.intersection(mem):
            continue
        # a Concat input with no QuantizeLinear of its own (a constant, say) keeps its scale, so
        # that Concat requantizes whatever the others share: the group is recorded, not shared
        complete = all(t in rng for t in concat_inputs.intersection(mem))
        mem = sorted(t for t in mem if t in rng)
        if len(mem) < 2:
            continue
        lo, hi = min(rng[t][0] for t in mem), max(rng[t][1] for t in mem)
        widening = max((hi - lo) / max(rng[t][1] - rng[t][0], 1e-30) for t in mem)
        shared = complete and widening <= max_widening
        groups.append({"tensors": mem, "rmin": lo, "rmax": hi, "widening": round(widening, 3), "shared": shared})
        if shared:
            for t in mem:
                overrides[t] = [{"rmin": np.array(lo, np.float32), "rmax": np.array(hi, np.float32)}]
    return overrides, groups
