"""Declarations of the environment effects (3DB's controls pattern): one ``Effect`` each.

An effect declares, once, everything the layers above need to know about it:

- ``dims``: the spec dimensions it reads, with group (``environment``, ``scenery`` or
  ``camera``), unit, range or choices, default, whether a variant may override it, and
  its taxonomy bins for trace (``Bin``);
- ``switches``: variant-only settings that are not sampled (``shadows: false``), with
  their value when no variant sets them.

Who reads the declarations: the spec schema (``odd.spec`` builds its scenery,
environment and camera sections and ``Variant`` from them), variant expansion
(``permute.variants``), the renderer (``render.effects``: each declared effect has one
implementation file there, registered against its declaration with ``implement``), and
trace's taxonomy (``trace.dimensions.TAXONOMY``).

The declarations live here, at the bottom of the import chain, because the spec schema
needs them and ``odd`` may import nothing above it; the ``apply`` of each effect needs
the renderer and lives in ``render/effects/<name>.py``. A new effect is its declaration
(``declare(Effect(...))``) plus one file in ``render/effects/``; a sensor effect
(exposure, noise, blur) is declared the same way, with dims in the ``camera`` group and an
image-stage implementation that runs after the weather.

The daylight formula (how much light the sun and sky give) is implemented once, in
``render/effects/daylight.py``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

INF = math.inf
GROUPS = ("scenery", "environment", "camera")


@dataclass(frozen=True)
class Bin:
    """One taxonomy class of a dimension for trace: ``lo``–``hi`` (either may be infinite,
    each closed or open); ``text`` reads the condition for this bin alone (``{name} = 0``)."""

    label: str
    lo: float = -INF
    hi: float = INF
    lo_closed: bool = True
    hi_closed: bool = False
    text: Optional[str] = None


@dataclass(frozen=True)
class Dimension:
    """A spec dimension an effect reads (a domain under ``group:`` in the spec).

    ``lo``/``hi``/``unit``: the accepted range of a numeric dimension; ``choices``: the
    words of a categorical one; ``default``: its value when the spec omits it; ``note``:
    what the bounds mean (shown with an out-of-range error); ``after``: the field of its
    group it follows (sampling order is field order; else it comes last);
    ``overridable``: a variant may set it; ``bins``: taxonomy classes for trace, applied to
    result columns named ``name`` or one of ``bin_aliases``.
    """

    name: str
    group: str
    default: Any
    unit: str = ""
    lo: float = 0.0
    hi: float = 0.0
    choices: Optional[tuple[str, ...]] = None
    integer: bool = False
    note: str = ""
    after: Optional[str] = None
    overridable: bool = True
    bins: tuple[Bin, ...] = ()
    bins_source: str = ""
    bin_aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise ValueError(f"dimension {self.name}: group must be one of {GROUPS}, got {self.group!r}")


@dataclass(frozen=True)
class Switch:
    """A variant-only setting (not sampled): ``default`` is its value when no variant sets
    it, a constant or a function of the environment in effect."""

    name: str
    doc: str
    default: Any = None

    def resolve(self, env: dict[str, Any]) -> Any:
        return self.default(env) if callable(self.default) else self.default


@dataclass(frozen=True)
class Effect:
    """One environment or sensor effect: what it is called, what it reads."""

    name: str
    doc: str
    dims: tuple[Dimension, ...] = ()
    switches: tuple[Switch, ...] = ()


#: every declared effect, in declaration order (the order of spec fields and variant keys)
EFFECTS: dict[str, Effect] = {}
_VERSION = [0]


def declare(effect: Effect) -> Effect:
    """Register ``effect``; its dimensions and switches join the spec from now on.
    Raises ValueError when a name is taken by another effect."""
    taken = {d.name: e.name for e in EFFECTS.values() if e.name != effect.name for d in e.dims}
    taken.update({s.name: e.name for e in EFFECTS.values() if e.name != effect.name for s in e.switches})
    for n in [d.name for d in effect.dims] + [s.name for s in effect.switches]:
        if n in taken:
            raise ValueError(f"effect {effect.name}: {n!r} is already declared by effect {taken[n]}")
    EFFECTS[effect.name] = effect
    _VERSION[0] += 1
    return effect


def withdraw(name: str) -> None:
    """Remove a declared effect (tests and plugins that registered one for a while)."""
    EFFECTS.pop(name, None)
    _VERSION[0] += 1


def version() -> int:
    """Changes whenever the declarations change (the spec schema is rebuilt then)."""
    return _VERSION[0]


def dimensions(group: Optional[str] = None) -> list[Dimension]:
    """Every declared dimension (of ``group``), in declaration order."""
    return [d for e in EFFECTS.values() for d in e.dims if group is None or d.group == group]


def switches() -> list[Switch]:
    return [s for e in EFFECTS.values() for s in e.switches]


def overridable() -> list[str]:
    """The keys a variant may set: overridable dimensions, then switches."""
    return [d.name for d in dimensions() if d.overridable] + [s.name for s in switches()]


# ----------------------------------------------------------------------------- the built-in effects

def precipitation_bins(unit: str) -> tuple[Bin, ...]:
    """none / light / moderate / heavy / violent precipitation (AMS glossary rain-rate classes)."""
    return (
        Bin("none (0)", -INF, 0.0, hi_closed=True, text="{name} = 0"),
        Bin(f"light (< 2.5 {unit})", 0.0, 2.5, lo_closed=False),
        Bin(f"moderate (2.5–10 {unit})", 2.5, 10.0),
        Bin(f"heavy (10–50 {unit})", 10.0, 50.0),
        Bin(f"violent (≥ 50 {unit})", 50.0, INF),
    )


#: fog visibility of 10 km or more is clear air (the meteorological definition); the
#: renderer draws no fog at 10000 m, so larger values would be recorded but not rendered
NO_FOG_M = 10000.0
ROAD_SURFACES = ("dry", "wet", "icy", "snow")

DAYLIGHT = declare(Effect(
    "daylight", "Sun position and cloud cover: direct sun, sky light, sky colour (civil twilight at -6°).",
    dims=(
        Dimension("sun_elevation_deg", "environment", 45.0, "deg", -90, 90, bins=(
            Bin("night (< −6°)", -INF, -6.0),
            Bin("twilight (−6° to 6°)", -6.0, 6.0),
            Bin("low sun (6° to 20°)", 6.0, 20.0),
            Bin("high sun (≥ 20°)", 20.0, INF),
        ), bins_source="taxonomy: sun elevation (civil twilight at −6°)"),
        Dimension("sun_azimuth_deg", "environment", 135.0, "deg", 0, 360),
        Dimension("cloud_cover", "environment", 0.2, "fraction", 0, 1),
    )))

FOG = declare(Effect(
    "fog", "Koschmieder fog from the depth buffer: meteorological visibility in metres.",
    dims=(Dimension("fog_visibility_m", "environment", NO_FOG_M, "m", 5, 10000, note="10000 m means no fog", bins=(
        Bin("dense fog (< 50 m)", -INF, 50.0),
        Bin("thick fog (50–200 m)", 50.0, 200.0),
        Bin("fog (200–1000 m)", 200.0, 1000.0),
        Bin("mist / haze (1–10 km)", 1000.0, 10000.0),
        Bin("no fog (≥ 10 km)", 10000.0, INF),
    ), bins_source="taxonomy: fog visibility classes, ≥ 10000 m = no fog"),)))

RAIN = declare(Effect(
    "rain", "Rain rate: a wet, darker, lower-contrast image with motion-blurred streaks.",
    dims=(Dimension("rain_mm_h", "environment", 0.0, "mm/h", 0, 200, bins=precipitation_bins("mm/h"),
                    bins_source="taxonomy: rain rate classes (light < 2.5, moderate < 10, heavy < 50, violent ≥ 50 mm/h)"),)))

SNOW = declare(Effect(
    "snow", "Snowfall rate: flakes, a whiter image, snow-covered terrain above 2 mm/h.",
    dims=(Dimension("snow_mm_h", "environment", 0.0, "mm/h", 0, 50, bins=precipitation_bins("mm/h"),
                    bins_source="taxonomy: snow rate, same classes as rain", bin_aliases=("snow",)),)))

ROAD_SURFACE = declare(Effect(
    "road_surface", "Road surface state: the road's colour, gloss and roughness; snow also covers the markings.",
    dims=(Dimension("road_surface", "scenery", "dry", choices=ROAD_SURFACES, after="lane_width_m"),)))

SHADOWS = declare(Effect(
    "shadows", "Directional shadows of the sun (only with scenery, and the sun more than 1° up).",
    switches=(Switch("shadows", "cast sun shadows", True),)))

HEADLIGHTS = declare(Effect(
    "headlights", "The ego vehicle's low beams.",
    switches=(Switch("headlights", "headlights on (default: when the sun is below the horizon)",
                     lambda env: env["sun_elevation_deg"] < 0),)))
