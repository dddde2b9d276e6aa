"""Layer-level divergence of two ONNX models on the same inputs: where does error enter?

The same measurement as ONNX Runtime's quantization debugger
(``onnxruntime.quantization.qdq_loss_debug``: augment both models so every intermediate
tensor is an output, run them on the same pre-processed images with graph optimisation off,
pair the tensors by name, SQNR in dB with ``compute_signal_to_quantization_noice_ratio``'s
formula), done image by image with running sums so memory stays at one image's activations:

- A is the reference (fp32); B is a QDQ-quantized copy of it (a tensor ``T`` of A is paired
  with ``T_DequantizeLinear_Output`` of B, the value B's consumers read) or any other model
  with the same tensor names (a modified copy: paired by name);
- ``sqnr_db`` = 20 log10(‖a‖ / ‖a − b‖) over the concatenation of the images (the cumulative
  error up to and including this tensor); ``qdq_sqnr_db`` = the same between B's own tensor
  before and after its QuantizeLinear/DequantizeLinear pair (the local rounding/clipping
  error of quantizing this tensor alone; None where the quantizer folded the op into the
  pair, e.g. a Relu, so that B has no comparable tensor before it). ‖·‖ is clamped at
  machine epsilon as ORT does, so bit-identical tensors get a large finite value; they are
  also flagged ``identical``;
- ``drop_db`` = (lowest SQNR among the node's measured, non-identical inputs) − ``sqnr_db``:
  how much worse this node's output is than its inputs (its own quantization noise, or an
  amplification of the error it receives: a float Sigmoid on small logits, a Sub of close
  values); ``origin`` marks a tensor that differs while all its measured inputs are
  identical (the error starts there);
- summaries: ``origins``, ``largest_drops``, ``noisiest_quantized`` (lowest ``qdq_sqnr_db``:
  the tensors whose own int8 rounding/clipping loses most) and, per module, its output SQNR.

With graph optimisation off the QDQ pairs are simulated in float, as the debugger does; the
deployed int8 kernels round the same values at the same points.
"""
from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from oddsuite.errors import ModelError
from oddsuite.fileio import sha256_file
from oddsuite.models.common import preprocess

log = logging.getLogger(__name__)

DQ_SUFFIX = "_DequantizeLinear_Output"
QIN_SUFFIX = "_QuantizeLinear_Input"
#: op types whose outputs are not activations
SKIP_OPS = {"Constant", "ConstantOfShape", "Shape", "Size", "QuantizeLinear", "DequantizeLinear"}
EPS = float(np.finfo(float).eps)
#: SQNR drawn for bit-identical tensors in the plot (their clamped value is ~300 dB)
PLOT_CEILING_DB = 100.0


def sqnr_db(signal_sq: float, noise_sq: float) -> float:
    """20 log10(‖x‖ / ‖x − y‖) from the sums of squares, norms clamped at eps (ORT's formula)."""
    return 20.0 * math.log10(max(math.sqrt(signal_sq), EPS) / max(math.sqrt(noise_sq), EPS))


def _float_types(model) -> dict[str, int]:
    """tensor name -> ONNX element type, for every typed tensor (after shape inference)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as e:  # noqa: BLE001 - fall back to what the file declares
        log.debug("shape inference failed (%s); using declared types only", e)
        inferred = model
    types: dict[str, int] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if t.elem_type:
            types[vi.name] = int(t.elem_type)
    for init in inferred.graph.initializer:
        types.pop(init.name, None)
    return types


def _floating(elem: int | None) -> bool:
    import onnx

    return elem in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                    onnx.TensorProto.BFLOAT16)


def _module_of(name: str) -> str:
    from oddsuite.quant.quantize import _MODULE_RE

    found = _MODULE_RE.findall(name)
    if found:
        return f"model.{found[-1]}"
    parts = [p for p in name.split("/") if p]
    return parts[0] if len(parts) > 1 else ""


def augment(model, names: Sequence[str], types: dict[str, int], path: Path) -> None:
    """Step 2: a copy of ``model`` with every tensor of ``names`` added as a graph output, saved to ``path``."""
    import onnx
    from onnx import helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output} | {i.name for i in m.graph.input}
    for n in names:
        if n not in have:
            m.graph.output.append(helper.make_tensor_value_info(n, types[n], None))
            have.add(n)
    onnx.save(m, str(path))


def _session(path: Path, threads: int | None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = int(threads)
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


@dataclass
class Pairing:
    """Which tensor of B each measured tensor of A is compared with.

    pairs: one row per paired tensor of A, in A's graph order (``tensor``, ``node``,
    ``op_type``, ``depth``, ``module``, ``b_tensor``, ``quantized``, ``pre_qdq``: B's tensor
    before its QDQ pair when comparable, else None); node_inputs: tensor -> the inputs of the
    node that made it; in_name, hw, batch: the image input; n_unmatched: A's tensors with no
    partner in B."""

    model_a: Any
    model_b: Any
    types_a: dict[str, int]
    types_b: dict[str, int]
    in_name: str
    hw: tuple[int, int]
    batch: int
    pairs: list[dict[str, Any]]
    node_inputs: dict[str, list[str]]
    n_unmatched: int


def _image_input(ma, mb, pa: Path, pb: Path) -> tuple[str, tuple[int, int], int]:
    """The one image input both models share: its name, fixed (H, W), and batch size."""
    init_a = {i.name for i in ma.graph.initializer}
    inputs_a = [i for i in ma.graph.input if i.name not in init_a]
    inputs_b = [i for i in mb.graph.input if i.name not in {x.name for x in mb.graph.initializer}]
    if len(inputs_a) != 1 or len(inputs_b) != 1 or inputs_a[0].name != inputs_b[0].name:
        raise ModelError(f"{pa}, {pb}: layer comparison needs one image input of the same name in both models")
    in_name = inputs_a[0].name
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs_a[0].type.tensor_type.shape.dim]
    dims_b = [d.dim_value if d.HasField("dim_value") else None for d in inputs_b[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or not dims[2] or not dims[3]:
        raise ModelError(f"{pa}: input {in_name!r} must be (N, 3, H, W) with a fixed H, W, got {dims}")
    if dims[2:] != dims_b[2:]:
        raise ModelError(f"{pa} is {dims[2:]}, {pb} is {dims_b[2:]}: input sizes differ, tensors cannot be paired")
    return in_name, (int(dims[2]), int(dims[3])), int(dims[0]) if dims[0] else 1


def _qdq_pairs(mb) -> dict[str, tuple[str, str]]:
    """B's activation QDQ pairs (QuantizeLinear -> DequantizeLinear) as (before, after), keyed
    by every name A may give that tensor: T (ORT names them T -> T_DequantizeLinear_Output, or,
    for a graph output T, T_QuantizeLinear_Input -> T)."""
    prod_b = {o: n for n in mb.graph.node for o in n.output if o}
    qdq: dict[str, tuple[str, str]] = {}
    for n in mb.graph.node:
        q = prod_b.get(n.input[0]) if n.op_type == "DequantizeLinear" and n.input else None
        if q is None or q.op_type != "QuantizeLinear":
            continue
        pre, post = q.input[0], n.output[0]
        keys = [pre, post]
        if post.endswith(DQ_SUFFIX):
            keys.append(post[: -len(DQ_SUFFIX)])
        if pre.endswith(QIN_SUFFIX):
            keys.append(pre[: -len(QIN_SUFFIX)])
        for k in keys:
            qdq.setdefault(k, (pre, post))
    return qdq


def pair_tensors(model_a: str | Path, model_b: str | Path) -> Pairing:
    """Step 1: load both models, find their shared image input, and pair every floating
    activation of A (in graph order) with B's tensor of that name or, where B quantized it,
    with the output of B's QDQ pair. ModelError when they cannot be paired."""
    import onnx

    pa, pb = Path(model_a), Path(model_b)
    try:
        ma, mb = onnx.load(str(pa)), onnx.load(str(pb))
    except Exception as e:
        raise ModelError(f"{pa} / {pb}: cannot read as ONNX: {e}") from e
    ta, tb = _float_types(ma), _float_types(mb)
    in_name, hw, batch = _image_input(ma, mb, pa, pb)
    # the tensors of A, in graph (topological) order, and their partners in B (only tensors a
    # node produces: a quantized model keeps stale value_info of tensors its rewrites removed)
    b_tensors = set(tb) & ({o for n in mb.graph.node for o in n.output} | {in_name})
    rows: list[dict[str, Any]] = []
    node_inputs: dict[str, list[str]] = {}
    if _floating(ta.get(in_name)):
        rows.append({"tensor": in_name, "node": "(input)", "op_type": "Input", "depth": 0, "module": "input"})
    for k, node in enumerate(ma.graph.node, start=1):
        if node.op_type in SKIP_OPS:
            continue
        for o in node.output:
            if o and _floating(ta.get(o)):
                rows.append({"tensor": o, "node": node.name, "op_type": node.op_type, "depth": k,
                             "module": _module_of(node.name)})
                node_inputs[o] = [i for i in node.input if i]
    prod_b = {o: n for n in mb.graph.node for o in n.output if o}
    qdq = _qdq_pairs(mb)
    op_a = {r["tensor"]: r["op_type"] for r in rows}
    pairs = []
    for r in rows:
        t = r["tensor"]
        if t in qdq and _floating(tb.get(qdq[t][1])):
            pre, post = qdq[t]
            # B's tensor before its QDQ pair is comparable only when the same op made it (the
            # quantizer folds e.g. a Relu into the pair, leaving the Conv output in its place)
            same_op = pre == in_name if t == in_name else (pre in prod_b and prod_b[pre].op_type == op_a[t])
            r["b_tensor"], r["quantized"], r["pre_qdq"] = post, True, (pre if same_op else None)
        elif t in b_tensors and _floating(tb.get(t)):
            r["b_tensor"], r["quantized"], r["pre_qdq"] = t, False, None
        else:
            continue
        pairs.append(r)
    if not pairs:
        raise ModelError(f"{pa}, {pb}: no tensor names in common; is B derived from A?")
    return Pairing(ma, mb, ta, tb, in_name, hw, batch, pairs, node_inputs, len(rows) - len(pairs))


def accumulate_sqnr(pairing: Pairing, images: Sequence[np.ndarray], threads: int | None = None
                    ) -> tuple[dict[str, np.ndarray], set[str]]:
    """Steps 2-3: augment both models (every paired tensor an output), run them image by image
    with graph optimisation off and keep running sums per tensor of A: signal², noise², values,
    B's pre-QDQ signal², QDQ noise². Returns the sums and the tensors whose shapes differ."""
    in_name = pairing.in_name
    want_a = [r["tensor"] for r in pairing.pairs if r["tensor"] != in_name]
    want_b = sorted({r["b_tensor"] for r in pairing.pairs} | {r["pre_qdq"] for r in pairing.pairs if r["pre_qdq"]}
                    - {in_name})
    sums = {r["tensor"]: np.zeros(5) for r in pairing.pairs}
    mismatch: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="oddsuite-layers.") as tmp:
        aug_a, aug_b = Path(tmp) / "a.onnx", Path(tmp) / "b.onnx"
        augment(pairing.model_a, want_a, pairing.types_a, aug_a)
        augment(pairing.model_b, want_b, pairing.types_b, aug_b)
        sa, sb = _session(aug_a, threads), _session(aug_b, threads)
        names_a = [o.name for o in sa.get_outputs()]
        names_b = [o.name for o in sb.get_outputs()]
        for img in images:
            x, _ = preprocess([np.asarray(img)], pairing.hw)
            if pairing.batch > 1:
                x = np.repeat(x, pairing.batch, axis=0)
            va = dict(zip(names_a, sa.run(None, {in_name: x})))
            va[in_name] = x
            vb = dict(zip(names_b, sb.run(None, {in_name: x})))
            vb.setdefault(in_name, x)
            for r in pairing.pairs:
                t = r["tensor"]
                a = np.asarray(va[t], dtype=np.float64)
                b = np.asarray(vb[r["b_tensor"]], dtype=np.float64)
                if a.shape != b.shape:
                    mismatch.add(t)
                    continue
                s = sums[t]
                s[0] += float(np.sum(a * a))
                s[1] += float(np.sum((a - b) ** 2))
                s[2] += a.size
                if r["pre_qdq"]:
                    p = np.asarray(vb[r["pre_qdq"]], dtype=np.float64)
                    s[3] += float(np.sum(p * p))
                    s[4] += float(np.sum((p - b) ** 2))
            del va, vb
    return sums, mismatch


def _tensor_records(pairing: Pairing, sums: dict[str, np.ndarray], mismatch: set[str]) -> list[dict[str, Any]]:
    """Per measured tensor: SQNR, identical, QDQ SQNR, and against its node's inputs the drop and origin."""
    tensors: list[dict[str, Any]] = []
    by_name: dict[str, dict[str, Any]] = {}
    for r in pairing.pairs:
        t = r["tensor"]
        if t in mismatch:
            continue
        s = sums[t]
        rec = {
            "depth": r["depth"], "tensor": t, "node": r["node"], "op_type": r["op_type"], "module": r["module"],
            "quantized": r["quantized"], "sqnr_db": sqnr_db(s[0], s[1]), "identical": bool(s[1] == 0.0),
            "qdq_sqnr_db": sqnr_db(s[3], s[4]) if r["pre_qdq"] else None, "n_values": int(s[2]),
        }
        tensors.append(rec)
        by_name[t] = rec
    for rec in tensors:
        ins = [by_name[i] for i in pairing.node_inputs.get(rec["tensor"], []) if i in by_name]
        differing = [i["sqnr_db"] for i in ins if not i["identical"]]
        rec["input_sqnr_db"] = min(differing) if differing else None
        rec["drop_db"] = (rec["input_sqnr_db"] - rec["sqnr_db"]) if (differing and not rec["identical"]) else None
        rec["origin"] = bool(ins) and not rec["identical"] and not differing
    return tensors


def _module_records(tensors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive tensors of one module: its depth span, output tensor and SQNR, lowest SQNR."""
    modules: list[dict[str, Any]] = []
    for rec in tensors:
        if not modules or modules[-1]["module"] != rec["module"]:
            modules.append({"module": rec["module"], "first_depth": rec["depth"], "tensors": []})
        modules[-1]["tensors"].append(rec)
    for m in modules:
        ts = m.pop("tensors")
        m.update({"last_depth": ts[-1]["depth"], "n_tensors": len(ts), "out_tensor": ts[-1]["tensor"],
                  "out_sqnr_db": ts[-1]["sqnr_db"], "min_sqnr_db": min(t["sqnr_db"] for t in ts),
                  "identical": all(t["identical"] for t in ts)})
    return modules


def summarise(pairing: Pairing, sums: dict[str, np.ndarray], mismatch: set[str], model_a: Path, model_b: Path,
              n_images: int, image_names: Sequence[str] | None) -> dict[str, Any]:
    """Step 4: the ``layers.json`` dict: every tensor, per module, and the summaries (origins,
    largest drops, noisiest quantized tensors)."""
    tensors = _tensor_records(pairing, sums, mismatch)

    def brief(t: dict[str, Any]) -> dict[str, Any]:
        return {k: t[k] for k in ("depth", "tensor", "node", "op_type", "module", "sqnr_db", "input_sqnr_db",
                                  "drop_db", "origin", "quantized")}

    drops = sorted((t for t in tensors if t["drop_db"] is not None), key=lambda t: -t["drop_db"])[:10]
    noisiest = sorted((t for t in tensors if t["qdq_sqnr_db"] is not None), key=lambda t: t["qdq_sqnr_db"])[:10]
    return {
        "method": "per-tensor SQNR (dB) of B against A, ORT qdq_loss_debug formula, graph optimisation off",
        "model_a": {"path": str(model_a), "sha256": sha256_file(model_a)},
        "model_b": {"path": str(model_b), "sha256": sha256_file(model_b)},
        "input": {"name": pairing.in_name, "hw": list(pairing.hw)},
        "images": list(image_names) if image_names is not None else None,
        "n_images": n_images,
        "n_tensors": len(tensors),
        "n_unmatched": pairing.n_unmatched + len(mismatch),
        "n_quantized": sum(t["quantized"] for t in tensors),
        "n_identical": sum(t["identical"] for t in tensors),
        "origins": [brief(t) for t in tensors if t["origin"]],
        "largest_drops": [brief(t) for t in drops],
        "noisiest_quantized": [{**brief(t), "qdq_sqnr_db": t["qdq_sqnr_db"]} for t in noisiest],
        "modules": _module_records(tensors),
        "tensors": tensors,
    }


def layer_divergence(model_a: str | Path, model_b: str | Path, images: Sequence[np.ndarray], *,
                     image_names: Sequence[str] | None = None, threads: int | None = None) -> dict[str, Any]:
    """Per-tensor SQNR of B against A on ``images`` (HxWx3 uint8 RGB, pre-processed as the
    ONNX adapter does at A's input size). Returns the ``layers.json`` dict (see module doc).

    The steps of ONNX Runtime's ``qdq_loss_debug``: :func:`pair_tensors` -> :func:`augment`
    and run (:func:`accumulate_sqnr`, running sums, one image's activations in memory) ->
    :func:`summarise`."""
    if not images:
        raise ValueError("layer_divergence: needs at least one image")
    pairing = pair_tensors(model_a, model_b)
    sums, mismatch = accumulate_sqnr(pairing, images, threads)
    return summarise(pairing, sums, mismatch, Path(model_a), Path(model_b), len(images), image_names)


def plot_layers(result: dict[str, Any], path: str | Path, *, title: str | None = None) -> Path:
    """SQNR along the network depth: every tensor (dots), each module's output (line),
    identical tensors at the top band, the origins of error (red lines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = result["tensors"]
    x = np.array([t["depth"] for t in ts], float)
    y = np.array([min(t["sqnr_db"], PLOT_CEILING_DB) for t in ts], float)
    ident = np.array([t["identical"] for t in ts], bool)
    conv = np.array([t["op_type"] in ("Conv", "ConvTranspose", "Gemm", "MatMul") for t in ts], bool)
    quant = np.array([t["quantized"] for t in ts], bool)
    fig, ax = plt.subplots(figsize=(12, 4.8), dpi=110)
    other = ~conv & ~ident
    if quant.any():
        ax.scatter(x[other & quant], y[other & quant], s=9, c="#999999", label="activation (quantized in B)")
        ax.scatter(x[other & ~quant], y[other & ~quant], s=12, facecolors="none", edgecolors="#777777",
                   label="activation (float in B)")
    else:
        ax.scatter(x[other], y[other], s=9, c="#999999", label="activation")
    ax.scatter(x[conv & ~ident], y[conv & ~ident], s=16, c="#1f77b4", label="Conv / Gemm output")
    if ident.any():
        ax.scatter(x[ident], np.full(ident.sum(), PLOT_CEILING_DB), s=10, marker="^", c="#2ca02c",
                   label=f"identical (drawn at {PLOT_CEILING_DB:.0f} dB)")
    mods = result["modules"]
    mx = [m["last_depth"] for m in mods]
    my = [min(m["out_sqnr_db"], PLOT_CEILING_DB) for m in mods]
    ax.plot(mx, my, "-", c="#ff7f0e", lw=1.5, label="module output")
    for m in mods:
        ax.axvline(m["first_depth"] - 0.5, c="#eeeeee", lw=0.8, zorder=0)
    labelled = mods if len(mods) <= 30 else mods[:: max(1, len(mods) // 30)]
    for m in labelled:
        ax.text((m["first_depth"] + m["last_depth"]) / 2, 1.01, m["module"].replace("model.", ""),
                transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=6, color="#555555")
    for o in result["origins"][:5]:
        ax.axvline(o["depth"], c="#d62728", lw=1.2, ls="--")
        ax.annotate(f"error enters: {o['node']}", (o["depth"], min(o["sqnr_db"], PLOT_CEILING_DB)),
                    xytext=(5, 10), textcoords="offset points", fontsize=7, color="#d62728")
    if result["largest_drops"]:
        d = result["largest_drops"][0]
        right = d["depth"] > 0.6 * max(float(x.max()), 1.0)
        ax.annotate(f"largest drop {d['drop_db']:.1f} dB: {d['node']}", (d["depth"], min(d["sqnr_db"], PLOT_CEILING_DB)),
                    xytext=(-5 if right else 5, -14), textcoords="offset points", fontsize=7, color="#9467bd",
                    ha="right" if right else "left")
    ax.set_xlabel("depth (node index in A's graph; module numbers on top)")
    ax.set_ylabel("SQNR of B vs A (dB)")
    low = float(np.nanmin(y)) if len(y) else 0.0
    ax.set_ylim(min(0.0, low - 5), PLOT_CEILING_DB + 8)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    ax.set_title(title or f"Layer-level divergence, {result['n_images']} images, {result['n_tensors']} tensors",
                 fontsize=10, pad=14)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
