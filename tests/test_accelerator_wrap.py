"""The torch wrapper, the Detector adapter, FAP/FAP+T on models and the MLP experiment (small)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from oddsuite.accelerator import (AccelConv2d, AccelLinear, AcceleratorDetector, FaultMap, SystolicArray,
                                         TimingErrors, TransientFlips, accelerate, accelerator_of, fap_masks,
                                         fine_tune_with_masks)
from oddsuite.accelerator.quant import quantize_activation
from oddsuite.models.base import Detections


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False)
        self.c3 = nn.Conv2d(8, 6, 1)
        self.c4 = nn.Conv2d(6, 4, (3, 2), padding=(1, 0), dilation=(1, 2), padding_mode="reflect")
        self.fc = nn.Linear(4 * 8 * 6, 5)

    def forward(self, x):
        x = torch.relu(self.bn(self.c1(x)))
        x = torch.relu(self.c2(x))
        x = torch.relu(self.c3(x))
        x = self.c4(x)
        return self.fc(x.flatten(1))


def _tiny():
    net = TinyNet().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.2, 0.2)
        net.bn.running_var.uniform_(0.5, 2.0)
    return net


def test_wrapper_close_to_float_without_faults():
    net = _tiny()
    x = torch.rand(4, 3, 16, 16)
    q = accelerate(net, SystolicArray(16, 8))
    acc = accelerator_of(q)
    assert sum(isinstance(m, AccelConv2d) for m in q.modules()) == 4
    assert sum(isinstance(m, AccelLinear) for m in q.modules()) == 1
    acc.calibrate(lambda: q(x))
    with torch.no_grad():
        yf, yq = net(x), q(x)
        with acc.in_mode("float"):
            assert torch.allclose(q(x), yf, atol=1e-5)
    rel = (yq - yf).norm() / yf.norm()
    assert rel < 0.05, rel
    assert yq.shape == yf.shape
    assert acc.stats.calls == 4 * (1 + 2 + 1 + 1) + 1  # per image and group (c2 has two); fc once
    # the original module is untouched
    assert isinstance(net.c1, nn.Conv2d) and not isinstance(net.c1, AccelConv2d)


def test_conv_accumulators_equal_independent_int8_reference():
    """The im2col lowering on the array == a float64 conv of the same int8 tensors (exact)."""
    torch.manual_seed(1)
    conv = nn.Conv2d(5, 7, 3, stride=2, padding=1, groups=1, bias=False)
    q = accelerate(nn.Sequential(conv), SystolicArray(8, 4), fuse=False)
    layer = q[0]
    x = torch.randn(2, 5, 9, 11)
    accelerator_of(q).calibrate(lambda: q(x))
    sx = layer._x_scale()
    xq = quantize_activation(x, sx, torch.float64)
    ref = nn.functional.conv2d(xq, layer.w_q.to(torch.float64), None, 2, 1)  # exact integer sums
    with torch.no_grad():
        y = q(x)
    got = y.double() / (sx * layer.w_scale.double()[None, :, None, None])
    assert torch.allclose(got, ref, atol=1e-3 * ref.abs().max().item())
    assert torch.equal(got.round(), ref)


def test_faults_change_outputs_fap_and_timing_and_determinism():
    net = _tiny()
    x = torch.rand(3, 3, 16, 16)
    q = accelerate(net, SystolicArray(16, 8))
    acc = accelerator_of(q)
    acc.calibrate(lambda: q(x))
    with torch.no_grad():
        clean = q(x)
        fm = FaultMap(16, 8, tuple(FaultMap.random(16, 8, 6, seed=3, bits=[28, 29, 30]).faults))
        acc.configure(fm)
        faulty = q(x)
        assert not torch.allclose(faulty, clean)
        acc.configure(fm)
        assert torch.equal(q(x), faulty)  # same map, same result
        acc.configure(fm, mitigation="fap")
        fap = q(x)
        # FAP == the same int8 model with the weights mapped to faulty PEs zeroed, run fault-free
        masks = list(fap_masks(_tiny(), SystolicArray(16, 8), fm).values())  # same layer order
        import copy

        q2 = copy.deepcopy(q)
        acc2 = accelerator_of(q2)
        for layer2, mask in zip(acc2.layers, masks):
            layer2.w_q.masked_fill_(mask, 0)
        acc2.configure()
        assert torch.equal(q2(x), fap)
        assert not torch.equal(fap, clean)
        # timing errors: seeded, TE-Drop hurts less than propagation at the same rate
        acc.configure(timing=TimingErrors(0.01, "propagate", seed=1))
        p1 = q(x)
        acc.configure(timing=TimingErrors(0.01, "propagate", seed=1))
        assert torch.equal(q(x), p1)
        assert acc.stats.timing_events > 0
        acc.configure(timing=TimingErrors(0.01, "te-drop", seed=1))
        d1 = q(x)
        assert (d1 - clean).norm() < (p1 - clean).norm()
        acc.configure(transient=TransientFlips(weight_rate=0.01, act_rate=0.001, seed=2))
        assert not torch.equal(q(x), clean)
        acc.configure()
        assert torch.equal(q(x), clean)


def test_fap_masks_match_array_mapping():
    lin = nn.Linear(10, 7)
    conv = nn.Conv2d(4, 6, 3, groups=2)
    array = SystolicArray(4, 3)
    fm = FaultMap.random(4, 3, 5, seed=0)
    m = fap_masks(nn.Sequential(lin, conv), array, fm)
    np.testing.assert_array_equal(m["0.weight"].numpy(), array.faulty_weight_mask(10, 7, fm).t().numpy())
    # grouped conv: each group is its own (K=2*3*3, N=3) product
    per_group = array.faulty_weight_mask(18, 3, fm).t().reshape(3, 2, 3, 3)
    assert torch.equal(m["1.weight"][:3], per_group) and torch.equal(m["1.weight"][3:], per_group)


def test_fine_tune_keeps_pruned_weights_zero():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))
    X, y = torch.randn(64, 12), torch.randint(0, 3, (64,))
    fm = FaultMap.random(8, 8, 20, seed=1)
    masks = fap_masks(model, SystolicArray(8, 8), fm)
    fine_tune_with_masks(model, masks, X, y, epochs=3, seed=0)
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        assert mask.any()
        assert torch.all(params[name][mask] == 0)
        assert torch.any(params[name][~mask] != 0)


def _yolo_model():
    os.environ.setdefault("YOLO_OFFLINE", "1")
    try:
        from oddsuite.models._ultra import ultralytics_offline

        ultralytics_offline()
    except ImportError:  # pragma: no cover - the offline helper belongs to another module
        pass
    from ultralytics import YOLO

    return YOLO("yolov8n.yaml").model.eval()


def test_ultralytics_yolo_runs_on_the_array():
    model = _yolo_model()
    x = torch.rand(1, 3, 64, 64)
    q = accelerate(model, SystolicArray(256, 256))
    acc = accelerator_of(q)
    assert type(q) is type(model)
    assert len(acc.layers) == sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()) - \
        sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) * 0
    acc.calibrate(lambda: q(x))
    with torch.no_grad():
        yf = model(x)
        yq = q(x)
        yf = yf[0] if isinstance(yf, (tuple, list)) else yf
        yq = yq[0] if isinstance(yq, (tuple, list)) else yq
        assert yq.shape == yf.shape
        assert torch.isfinite(yq).all()
        acc.configure(FaultMap.random(256, 256, 64, seed=0))
        yfault = q(x)
        yfault = yfault[0] if isinstance(yfault, (tuple, list)) else yfault
        assert yfault.shape == yf.shape
        assert acc.stats.replayed_columns > 0


class _FakeDetector:
    """A Detector that meets the contract: predict() runs self.torch_model on each call."""

    name = "fake"
    classes = {0: "thing"}

    def __init__(self):
        torch.manual_seed(0)
        self.torch_model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                         nn.Flatten(), nn.Linear(4, 5)).eval()

    def predict(self, images, conf=0.001):
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
        with torch.inference_mode():
            y = self.torch_model(x)
        out = []
        for row in y:
            s = torch.sigmoid(row[4:5]).numpy()
            box = (row[:4].abs().cumsum(0) * 10).numpy()[None]
            out.append(Detections(box, s, np.zeros(1, np.int64)).above(conf))
        return out


def test_accelerator_detector_wraps_a_torch_detector():
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(5)]
    inner = _FakeDetector()
    det = AcceleratorDetector(inner, SystolicArray(8, 8))
    with pytest.raises(RuntimeError, match="calibrate"):
        det.predict(imgs)
    det.calibrate(imgs[:3])
    ref = inner.predict(imgs)
    got = det.predict(imgs)
    assert len(got) == 5 and all(isinstance(d, Detections) for d in got)
    assert np.allclose(got[0].scores, ref[0].scores, atol=0.05)
    assert det.name == "fake@8x8"
    det.configure(FaultMap.random(8, 8, 8, seed=1, bits=[30]))
    assert det.name == "fake@8x8+8pe-none-s1"
    faulty = det.predict(imgs)
    assert any(not np.allclose(a.boxes, b.boxes) or not np.allclose(a.scores, b.scores) for a, b in zip(faulty, got))
    assert inner.torch_model[0].__class__ is nn.Conv2d  # the wrapped detector keeps its float model
    with pytest.raises(TypeError, match="torch_model"):
        AcceleratorDetector(object())


def test_mlp_experiment_small(tmp_path):
    from oddsuite.studies.mlp_experiment import MLPExperimentConfig, run_mlp_experiment

    cfg = MLPExperimentConfig(rows=32, cols=32, faulty_pes=(0, 4, 512), maps=2, timing_rates=(1e-3,),
                              epochs=4, ft_epochs=1, hidden=(32, 32, 32))
    res = run_mlp_experiment(tmp_path, cfg)
    assert res["model"]["int8_accuracy"] > 0.5
    summ = {(r["faulty_pes"], r["mitigation"]): r for r in res["stuck_at_summary"]}
    assert set(summ) == {(n, m) for n in (0, 4, 512) for m in ("none", "fap", "fap+t")}
    assert summ[(0, "none")]["median"] == res["model"]["int8_accuracy"]
    assert summ[(512, "none")]["n"] == 2
    assert {(r["rate"], r["mode"]) for r in res["timing_summary"]} == {(1e-3, "propagate"), (1e-3, "te-drop")}
    for f in ("results.json", "stuck_at.csv", "timing.csv", "mlp_faults.png"):
        assert (tmp_path / f).stat().st_size > 0
    back = json.loads((tmp_path / "results.json").read_text())
    assert back["findings"] == res["findings"]
    # the saved maps replay the points: the map for n PEs is the first n faults of the seed's map
    seed = res["map_seeds"][0]
    saved = FaultMap.load(tmp_path / "maps" / f"seed-{seed}.json")
    assert saved.faults[:4] == FaultMap.random(32, 32, 4, seed=seed).faults
