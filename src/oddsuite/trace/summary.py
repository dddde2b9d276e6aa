"""Readable lines from a trace.json dict: the top cause of each kind (condition slice, rule,
class presence, ROI instance) and the command's summary. Library code: it returns text,
``commands/trace.py`` prints it and the report's at-a-glance lines quote it."""
from __future__ import annotations

from typing import Any, Mapping

from oddsuite.trace.presence import presence_summary, top_presence


def _ci(r: Mapping[str, Any]) -> str:
    if r.get("value") is None:
        return "undefined (n = 0)"
    lo, hi = r["ci95"]
    return f"{r['value']:.2f} [{lo:.2f}, {hi:.2f}]"


def rate_summary(text: str, rec: Mapping[str, Any]) -> str:
    """'fog_visibility_m < 200 m: failure rate 0.71 [0.63, 0.78], n = 140, 38% of all failures'."""
    r = rec["rate"]
    if r["value"] is None:
        return f"{text}: failure rate undefined (n = 0)"
    share = rec.get("share_of_failures")
    return (f"{text}: failure rate {r['value']:.2f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}], n = {rec['n']}"
            + (f", {share:.0%} of all failures" if share is not None else ""))


def top_roi_rows(data: Mapping[str, Any], k: int = 3) -> list[dict[str, Any]]:
    """Instance-level influence rows (target class, other class, relation) with a positive,
    identifiable influence over at least ``min_pairs`` image pairs, most harmful first."""
    infl = data.get("influence") or {}
    min_pairs = infl.get("min_pairs", 1)
    rows = [r for c in infl.get("by_target_class") or [] for r in c.get("rows") or []
            if (r.get("influence") or 0) > 0 and r["n_pairs"] >= min_pairs]
    rows.sort(key=lambda r: (-r["influence"], -r["n_pairs"], str(r["target_category"]), str(r["other_category"])))
    return rows[:k]


def roi_row_summary(r: Mapping[str, Any]) -> str:
    """'car (in front, right, overlapping box) → person: influence +0.50 over 12 image pairs (3 ROI pairs)'."""
    return (f"{r['other_category']} ({r['relation']}) → {r['target_category']}: influence {r['influence']:+.2f} "
            f"over {r['n_pairs']} image pairs ({r.get('n_roi_pairs', '?')} ROI pair(s))")


def unseparated(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Presence rows the plan could not separate (no presence pair)."""
    return [r for r in (data.get("presence") or {}).get("rows") or [] if not r.get("identifiable", True)]


def unseparated_instances(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """(target class, other class) pairs whose instance-level rows all had only redundant
    image pairs (every pair added the other ROI beside another of its class)."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for c in (data.get("influence") or {}).get("by_target_class") or []:
        for r in c.get("rows") or []:
            key = (str(r["target_category"]), str(r["other_category"]))
            if r.get("n_pairs"):
                seen.setdefault(key, {"target_category": key[0], "other_category": key[1], "n_pairs": 0,
                                      "identifiable": False, "note": r.get("note")})
                seen[key]["n_pairs"] += r["n_pairs"]
                seen[key]["identifiable"] |= bool(r.get("identifiable", True))
    return [v for v in seen.values() if not v["identifiable"]]


def top_causes(data: Mapping[str, Any]) -> dict[str, Any]:
    """The top cause of each kind, or None: ``condition`` (the first slice when its
    conditional score is positive), ``rule`` (the first rule above the overall rate, with
    conditions), ``presence`` (the first presence row with a positive score), ``roi`` (the
    most harmful identifiable instance row)."""
    s = (data.get("slices") or [None])[0]
    cond = s if s is not None and ((s.get("conditional") or {}).get("score") or 0) > 0 else None
    rules = [r for r in data.get("rules") or [] if r.get("above_overall") and r.get("conditions")]
    pres = top_presence(data.get("presence"), 1)
    roi = top_roi_rows(data, 1)
    return {"condition": cond, "rule": rules[0] if rules else None, "presence": pres[0] if pres else None,
            "roi": roi[0] if roi else None}


def _slice_line(i: int, s: Mapping[str, Any]) -> str:
    c = s.get("conditional") or {}
    line = f"  {i}. {s.get('summary') or rate_summary(s['condition'], s)}" + (" [small n]" if s.get("small_n") else "")
    if i > 1:
        if (c.get("score") or 0) > 0:
            line += f"; outside the slices above: {_ci(c['rate'])}, n = {c['n']}"
        else:
            line += "; explained by the slices above" if c.get("n") else "; all its rows are in the slices above"
    return line


def summary_lines(data: Mapping[str, Any], top: int = 5) -> list[str]:
    """What ``oddsuite trace`` prints: overall, the top slices (each on what the ones above
    leave unexplained), the rules, the top class-presence and ROI influences, and what the
    plan could not separate."""
    ov = data["overall"]
    lines = [f"traced {ov['n']} ROI rows of {data['settings']['image_set_text']}: "
             f"failure rate {_ci(ov['rate'])}, {ov['failures']} failures"]
    if data["slices"]:
        lines.append("failing conditions, each ranked on what the ones above leave unexplained "
                     f"(small n: n < {data['settings']['min_support']}):")
        lines += [_slice_line(i, s) for i, s in enumerate(data["slices"][:top], 1)]
    rules = [r for r in data["rules"] if r["above_overall"]]
    if rules:
        lines.append("rules:")
        lines += [f"  {r['summary']}" for r in rules[:top]]
    pres = top_presence(data.get("presence"), 3)
    lines.append("class presence (any ROI of the class present vs none):" if pres else
                 "class presence: no class breaks targets more often than adding any ROI does")
    lines += [f"  {presence_summary(r)}" for r in pres]
    for r in unseparated(data)[:3]:
        lines.append(f"  {r['other_category']} present → {r['target_category']}: {r['contrasts'].split('. ')[0]}")
    rois = top_roi_rows(data, 3)
    lines.append("ROI influence (instance by instance):" if rois else
                 "ROI influence: no co-present ROI with a positive influence over enough image pairs")
    lines += [f"  {roi_row_summary(r)}" for r in rois]
    for r in unseparated_instances(data)[:3]:
        lines.append(f"  {r['other_category']} → {r['target_category']}: not separable instance by instance over "
                     f"{r['n_pairs']} image pairs ({r['note']})")
    return lines
