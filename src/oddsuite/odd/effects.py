"""Declarations of the environment and sensor effects (3DB's controls pattern): one ``Effect`` each.

An effect declares, once, everything the layers above need to know about it:

- ``dims``: the spec dimensions it reads, with group (``scenery``, ``environment``,
  ``camera`` or ``sensor``: the spec section it sits in and the prefix of its column in
  scenes.parquet), unit, range or choices, default, whether a variant may override it,
  and its taxonomy bins for trace (``Bin``);
- ``switches``: variant-only settings that are not sampled (``shadows: false``), with
  their value when no variant sets them (and their column group, ``environment``).

Who reads the declarations: the spec schema (``odd.spec`` builds its scenery,
environment, camera and sensor sections and ``Variant`` from them), variant expansion
(``permute.variants``), the renderer (``render.effects``: each declared effect has one
implementation file there, registered against its declaration with ``implement``), and
trace's taxonomy (``trace.dimensions.TAXONOMY``).

The declarations live here, at the bottom of the import chain, because the spec schema
needs them and ``odd`` may import nothing above it; the ``apply`` of each effect needs
the renderer and lives in ``render/effects/<name>.py``. A new effect is its declaration
(``declare(Effect(...))``) plus one file in ``render/effects/``. A sensor effect
(exposure, tone mapping, noise, blur, vignetting, JPEG) is declared the same way, with
dims in the ``sensor`` group and a sensor-stage implementation (``render.effects.sensor``
runs them as one camera pipeline on every image after the weather and the masking).

Why a ``sensor`` group of its own: ISO 34503's taxonomy has scenery, environmental
conditions and dynamic elements; the camera that records the scene is not part of the
ODD's world, and its settings are neither weather nor the camera's pose (``camera``).
Sensor dimensions exist in a suite only when its spec mentions them
(``OddSpec.sensor_given``): a spec without them renders, samples and records exactly as
before they existed.

The daylight formula (how much light the sun and sky give) is implemented once, in
``render/effects/daylight.py``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

INF = math.inf
#: the spec sections effect dimensions sit in; each is also the prefix of its columns
GROUPS = ("scenery", "environment", "camera", "sensor")


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
    it, a constant or a function of the environment in effect; ``group``: the prefix of
    its column in scenes.parquet."""

    name: str
    doc: str
    default: Any = None
    group: str = "environment"

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise ValueError(f"switch {self.name}: group must be one of {GROUPS}, got {self.group!r}")

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


def column(name: str) -> str:
    """The scenes.parquet column of a dimension or switch: ``<group>.<name>``
    (``environment.fog_visibility_m``, ``scenery.road_surface``, ``sensor.iso``).
    Raises KeyError for a name no effect declares."""
    for e in EFFECTS.values():
        for x in (*e.dims, *e.switches):
            if x.name == name:
                return f"{x.group}.{name}"
    raise KeyError(f"{name!r} is not declared by any effect")


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


# ----------------------------------------------------------------------------- the sensor effects
# A camera pipeline, run in this order on every image (render.effects.sensor.apply_sensor):
# optics (defocus, motion blur, vignetting) on linear radiance, exposure, noise, tone
# mapping, JPEG. Each dimension's default is the ideal camera: all defaults leave the image
# untouched, byte for byte.

TONE_CURVES = ("linear", "reinhard", "aces")

DEFOCUS = declare(Effect(
    "defocus", "Defocus blur: a disc point-spread function (the geometric circle of confusion), its diameter in pixels.",
    dims=(Dimension("defocus_blur_px", "sensor", 0.0, "px", 0, 64,
                    note="diameter of the circle of confusion; 0 = in focus"),)))

MOTION_BLUR = declare(Effect(
    "motion_blur", "Motion blur: a straight streak of the given length (pixels per exposure) and image direction.",
    dims=(Dimension("motion_blur_px", "sensor", 0.0, "px", 0, 128, note="streak length during the exposure; 0 = none"),
          Dimension("motion_blur_deg", "sensor", 0.0, "deg", 0, 180,
                    note="streak direction in the image, counter-clockwise from the +x axis (0 = horizontal)"))))

VIGNETTING = declare(Effect(
    "vignetting", "Vignetting: the light lost at the image corners, falling off as cos⁴ of the field angle.",
    dims=(Dimension("vignetting", "sensor", 0.0, "fraction", 0, 0.95,
                    note="light lost at the image corners (1 − relative illumination); 0 = none"),)))

EXPOSURE = declare(Effect(
    "exposure", "Exposure offset in stops: the linear radiance times 2^EV.",
    dims=(Dimension("exposure_ev", "sensor", 0.0, "EV", -8, 8, note="0 = the renderer's exposure"),)))

NOISE = declare(Effect(
    "noise", "Photon (shot) and read noise of a CMOS sensor at an ISO setting (Poisson-Gaussian).",
    dims=(Dimension("iso", "sensor", 0.0, "ISO", 0, 102400,
                    note="0 = a noise-free sensor; 100 = base ISO, white at full well"),)))

TONE_MAPPING = declare(Effect(
    "tone_mapping", "Tone curve from linear radiance to display values: linear (clips at white), reinhard, aces.",
    dims=(Dimension("tone_mapping", "sensor", "linear", choices=TONE_CURVES),)))

JPEG = declare(Effect(
    "jpeg", "JPEG compression (libjpeg through opencv) at a quality setting.",
    dims=(Dimension("jpeg_quality", "sensor", 100, "quality", 1, 100, integer=True,
                    note="100 = no JPEG (the image stays lossless); 1-99 = libjpeg quality"),)))
