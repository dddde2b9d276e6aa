"""Loading a spec: text → ``OddSpec``, with every error named by file, line and YAML path.

``parse_spec`` reads the YAML safely (``odd.reader``), validates it against the schema
(``odd.spec``), then runs the checks that need the whole spec, all before any work
starts: rules are type-checked against their dimensions (``odd.rules``), every
permutation plan is bounded by ``permutations.max_subsets`` for the largest scene the
counts allow, layer compositing is refused with an engine other than the rasterizer
(``render``), the spec's sampler may refuse it (the grid bounds its cell count), and user
meshes are loaded and checked (``odd.meshes``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from oddsuite.errors import SpecError
from oddsuite.odd.acceptance import Criterion, acceptance_problems
from oddsuite.odd.effects import GROUPS
from oddsuite.odd.meshes import mesh_problem
from oddsuite.odd.reader import Problem, YamlDoc, path_on_line, read_yaml, spec_error
from oddsuite.odd.rules import rule_problems
from oddsuite.odd.samplers import SAMPLERS
from oddsuite.odd.spec import (ObjectClass, OddSpec, Permutations, Render, Rule, overrides_model, plan_size,
                               section_model)


def parse_spec(text: str, source: str = "<string>", *, meshes: bool = True) -> OddSpec:
    """Parse and validate spec text; ``source`` names the file in error messages.
    Raises SpecError listing every problem found (``file:line: yaml.path: what``).
    ``meshes=False`` skips loading user meshes (a spec kept in a suite, without its meshes)."""
    doc = read_yaml(text, source)
    if not isinstance(doc.data, dict):
        raise spec_error(source, [Problem(1, (), "expected a mapping at the top (name, objects, …), got "
                                                 f"{type(doc.data).__name__}")])
    try:
        spec = OddSpec.model_validate(doc.data)
    except ValidationError as e:
        raise spec_error(source, [_problem(doc, err) for err in e.errors()]) from None
    spec = spec.model_copy(update={"source_path": source, "source_text": text})
    problems = [Problem(doc.line_of(path), path, _with_hints(doc, path, msg))
                for path, msg in whole_spec_problems(spec, meshes=meshes)]
    if problems:
        raise spec_error(source, problems)
    return spec


def load_spec(path: str | Path) -> OddSpec:
    """Read and parse the spec file at ``path`` (UTF-8 YAML)."""
    p = Path(path)
    if p.is_dir():
        raise SpecError(f"{p}: a folder, not a spec file: give the YAML file (e.g. odd_specs/urban_day.yaml)")
    if not p.is_file():
        raise SpecError(f"{p}: spec file not found")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise SpecError(f"{p}: cannot read the spec file: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _not_utf8(raw, e, str(p)) from None
    return parse_spec(text, source=str(p))


def _not_utf8(raw: bytes, e: UnicodeDecodeError, source: str) -> SpecError:
    line = raw.count(b"\n", 0, e.start) + 1
    col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
    path = path_on_line(raw.decode("utf-8", errors="replace"), line)  # where the bad byte sits
    return spec_error(source, [Problem(line, path, f"not UTF-8 text: byte 0x{raw[e.start]:02x} at column {col} "
                                                   f"cannot be decoded; save the file as UTF-8")])


# ----------------------------------------------------------------------------- errors

def _problem(doc: YamlDoc, err: dict[str, Any]) -> Problem:
    loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-")))
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
        allowed = _allowed_keys(loc[:-1])
        if allowed:
            msg += f" (expected one of: {', '.join(allowed)})"
    elif err["type"] == "missing":
        msg = "required key is missing"
    msg = msg.removeprefix("Value error, ")
    return Problem(doc.line_of(loc), loc, _with_hints(doc, loc, msg))


def _with_hints(doc: YamlDoc, path: tuple, msg: str) -> str:
    hints = doc.hints_at(path)
    return msg + "".join(f" ({h})" for h in hints)


def _allowed_keys(parent: tuple) -> list[str]:
    """The keys a mapping at YAML path ``parent`` accepts (for 'unknown key' messages)."""
    models: dict[tuple, Any] = {
        (): OddSpec, **{(g,): section_model(g) for g in GROUPS}, ("permutations",): Permutations,
        ("objects", str): ObjectClass, ("rules", int): Rule, ("acceptance", int): Criterion,
        ("render",): Render,
    }
    shape = tuple(type(p) if i else p for i, p in enumerate(parent)) if len(parent) == 2 else tuple(parent)
    if len(parent) == 2 and parent[0] == "variants":
        return ["name", *overrides_model().model_fields]
    model = models.get(shape)
    return [f.alias or k for k, f in model.model_fields.items() if k not in ("source_path", "source_text")] if model else []


# ----------------------------------------------------------------------------- whole-spec checks

def whole_spec_problems(spec: OddSpec, *, meshes: bool = True) -> list[tuple[tuple, str]]:
    """Problems that need more than one field: (YAML path, message) each."""
    dims = spec.dimensions()
    return (rule_problems(spec.rules, dims) + plan_problems(spec) + render_problems(spec)
            + SAMPLERS[spec.sampler].problems(spec) + (mesh_problems(spec) if meshes else []) + acceptance_problems(spec))


def plan_problems(spec: OddSpec) -> list[tuple[tuple, str]]:
    """The permutation plan must stay within max_subsets for the largest scene the counts allow."""
    p = spec.permutations
    n = spec.max_rois
    size = plan_size(p.plan, n, p.k, p.n)
    if size <= p.max_subsets:
        return []
    knob = {"k-subsets": ("k", f"k = {p.k}"), "sampled": ("n", f"n = {p.n}")}.get(p.plan, ("plan", ""))
    return [(("permutations", knob[0]),
             f"a scene can hold up to {n} ROIs (the sum of the object counts' maxima); the {p.plan} plan"
             f"{' with ' + knob[1] if knob[1] else ''} gives up to {size} subsets per scene, above "
             f"permutations.max_subsets = {p.max_subsets}; lower the counts"
             f"{' or ' + knob[0] if knob[0] != 'plan' else ''}, use ablation or sampled, or raise max_subsets")]


def render_problems(spec: OddSpec) -> list[tuple[tuple, str]]:
    """Layer compositing approximates the rasterizer only: refused with another engine."""
    if spec.permutations.renderer == "composite" and spec.render.engine != "raster":
        return [(("permutations", "renderer"),
                 f"composite is refused with render.engine: {spec.render.engine} (under global illumination an "
                 f"object also lights and shows in reflections of its surroundings, which layers cannot remove); "
                 f"use exact")]
    return []


def mesh_problems(spec: OddSpec) -> list[tuple[tuple, str]]:
    out: list[tuple[tuple, str]] = []
    for key, oc in spec.objects.items():
        if oc.mesh is None:
            continue
        try:
            path = spec.mesh_path(key)
        except ValueError as e:
            out.append((("objects", key, "mesh"), str(e)))
            continue
        msg = mesh_problem(path, oc.size_m, oc.units)  # type: ignore[arg-type]
        if msg:
            out.append((("objects", key, "mesh"), msg))
    return out
