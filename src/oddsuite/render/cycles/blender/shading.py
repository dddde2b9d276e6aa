"""Procedural Cycles materials, one node tree per material role, and the sky (Blender side).

Every material starts from the part's own colour, metallic and roughness (the values the
rasterizer shades with) and adds what the role's surface does in the physical world:
asphalt grain and wear, puddles on a wet road, clear coat on car paint, glass reflection,
skin subsurface scattering, fabric sheen, window light at night. Textures are procedural
and live in object space (metres), so they do not stretch with an asset's size. Values
that follow the environment (road wet / icy / snow, snow cover, night, lamps) are Value
nodes that ``Material.set`` changes per render, which keeps Blender's persistent data.
Which surfaces are wet, icy or snow-covered is decided in oddsuite by the declared
effects (the road surface, snowfall); ``set`` only receives the outcome.
"""
from __future__ import annotations

import math

import bpy

SNOW = (0.88, 0.89, 0.92, 1.0)
#: roles that snow covers (the rasterizer's scenes.assets.SNOW_COVERED)
SNOW_COVERED = ("ground", "pavement", "kerb")


def assign(obj, attr: str, value) -> None:
    """Set ``obj.attr`` only when it changes: any write re-syncs Blender's data (a sky
    texture write recomputes the sky, seconds on a CPU)."""
    cur = getattr(obj, attr)
    if isinstance(cur, (str, bool, int)):
        same = cur == value
    elif isinstance(cur, float):
        same = abs(cur - float(value)) < 1e-7
    else:  # vectors, colours, quaternions
        same = len(cur) == len(value) and all(abs(float(a) - float(b)) < 1e-7 for a, b in zip(cur, value))
    if not same:
        setattr(obj, attr, value)


def _rgba(c) -> tuple:
    return (float(c[0]), float(c[1]), float(c[2]), float(c[3]) if len(c) > 3 else 1.0)


def _scaled(c, k: float) -> tuple:
    return (c[0] * k, c[1] * k, c[2] * k, 1.0)


class Tree:
    """A small builder over a node tree: ``node(kind, inputs, **props)`` sets an input to a
    value or links a socket to it."""

    def __init__(self, nt: bpy.types.NodeTree):
        self.nt = nt

    def node(self, kind: str, inputs: dict | None = None, **props):
        n = self.nt.nodes.new(kind)
        for k, v in props.items():
            setattr(n, k, v)
        for k, v in (inputs or {}).items():
            self.put(n.inputs[k], v)
        return n

    def put(self, sock, v) -> None:
        if isinstance(v, bpy.types.NodeSocket):
            self.nt.links.new(v, sock)
        else:
            sock.default_value = v

    # small math in node form
    def mix(self, fac, a, b):
        """Colour lerp a → b by fac."""
        return self.node("ShaderNodeMixRGB", {"Fac": fac, "Color1": a, "Color2": b}).outputs["Color"]

    def lerp(self, fac, a, b):
        """Float lerp a → b by fac (clamped)."""
        return self.node("ShaderNodeMapRange", {"Value": fac, "To Min": a, "To Max": b}).outputs["Result"]

    def op(self, op: str, a, b=0.0):
        n = self.nt.nodes.new("ShaderNodeMath")
        n.operation = op
        self.put(n.inputs[0], a)
        self.put(n.inputs[1], b)
        return n.outputs[0]

    def coords(self):
        return self.node("ShaderNodeTexCoord").outputs["Object"]

    def noise(self, scale: float, detail: float = 2.0, roughness: float = 0.5, vector=None):
        n = self.node("ShaderNodeTexNoise", {"Scale": scale, "Detail": detail, "Roughness": roughness})
        self.put(n.inputs["Vector"], vector if vector is not None else self.coords())
        return n.outputs["Factor"]

    def ramp(self, fac, lo: float, hi: float):
        """0 below lo, 1 above hi, smooth between (a thresholded noise mask)."""
        n = self.node("ShaderNodeMapRange", {"Value": fac, "From Min": lo, "From Max": hi}, interpolation_type="SMOOTHSTEP")
        return n.outputs["Result"]

    def bump(self, height, strength: float, distance: float = 0.02):
        return self.node("ShaderNodeBump", {"Height": height, "Strength": strength, "Distance": distance}).outputs["Normal"]


class Material:
    """One Blender material of a (role, colour, metallic, roughness); ``set`` follows the env."""

    def __init__(self, index: int, spec: dict):
        self.role = spec["role"]
        self.material = bpy.data.materials.new(f"m{index}_{self.role}")
        if hasattr(self.material, "use_nodes"):
            self.material.use_nodes = True
        nt = self.material.node_tree
        for n in list(nt.nodes):
            nt.nodes.remove(n)
        self.t = Tree(nt)
        self.bsdf = self.t.node("ShaderNodeBsdfPrincipled")
        out = self.t.node("ShaderNodeOutputMaterial")
        nt.links.new(self.bsdf.outputs["BSDF"], out.inputs["Surface"])
        self.values: dict[str, bpy.types.Node] = {}
        self.color = _rgba(spec["color"])
        self.metallic = float(spec["metallic"])
        self.roughness = float(spec["roughness"])
        getattr(self, "_" + self.role, self._generic)()

    # -- env-driven values
    def value(self, name: str, default: float = 0.0):
        if name not in self.values:
            self.values[name] = self.t.node("ShaderNodeValue")
            self.values[name].outputs[0].default_value = default
        return self.values[name].outputs[0]

    def set(self, road: str, markings_snow: bool, terrain_snow: bool, night: float, lamps: float) -> None:
        """``road``: the road surface state (dry, wet, icy, snow); ``markings_snow`` and
        ``terrain_snow``: snow lies on the lane markings / on terrain, pavement and kerbs."""
        snow = {"asphalt": road == "snow", "lane_paint": markings_snow}.get(self.role,
                                                                          terrain_snow and self.role in SNOW_COVERED)
        vals = {
            "wet": float(road == "wet"),
            "icy": float(road == "icy"),
            "snow": float(snow),
            "night": night,
            "lamps": lamps,
        }
        for k, node in self.values.items():
            assign(node.outputs[0], "default_value", vals[k])

    def _in(self, name: str, v) -> None:
        self.t.put(self.bsdf.inputs[name], v)

    def _base(self, color=None, metallic=None, roughness=None) -> None:
        self._in("Base Color", color if color is not None else self.color)
        self._in("Metallic", self.metallic if metallic is None else metallic)
        self._in("Roughness", self.roughness if roughness is None else roughness)

    # -- roles (scenes.assets.MATERIALS)
    def _generic(self) -> None:
        self._base()

    def _car_paint(self) -> None:
        t = self.t
        flakes = self.metallic > 0.3
        self._base(metallic=0.6 if flakes else 0.0, roughness=0.35 if flakes else 0.3)
        self._in("Coat Weight", 1.0)
        self._in("Coat Roughness", 0.03)
        self._in("Coat IOR", 1.5)
        if flakes:  # metallic flakes: a fine normal noise under the coat
            self._in("Normal", t.bump(t.noise(900.0, 0.0), 0.08, 0.001))

    def _paint(self) -> None:
        self._base(roughness=max(self.roughness, 0.35))
        self._in("Coat Weight", 0.3)

    def _glass(self) -> None:
        tint = self.color
        self._base(color=(0.6 * tint[0] + 0.01, 0.6 * tint[1] + 0.012, 0.6 * tint[2] + 0.016, 1.0), metallic=0.0,
                   roughness=0.02)
        self._in("IOR", 1.52)
        self._in("Specular IOR Level", 0.6)

    def _window(self) -> None:
        self._glass()

    def _window_lit(self) -> None:
        self._glass()
        self._in("Emission Color", (1.0, 0.78, 0.5, 1.0))
        self._in("Emission Strength", self.t.op("MULTIPLY", self.value("night"), 1.5))

    def _tyre(self) -> None:
        t = self.t
        self._base(color=_scaled(self.color, 1.0), metallic=0.0, roughness=0.85)
        self._in("Normal", t.bump(t.noise(60.0, 3.0), 0.15, 0.002))

    def _rim(self) -> None:
        self._base(metallic=1.0, roughness=0.25)

    def _trim(self) -> None:
        self._base(metallic=0.0, roughness=0.5)

    def _lamp(self, emit) -> None:
        self._base(metallic=0.0, roughness=0.1)
        self._in("Coat Weight", 1.0)
        self._in("Emission Color", emit)
        self._in("Emission Strength", self.t.op("MULTIPLY", self.value("lamps"), 25.0))

    def _lamp_front(self) -> None:
        self._lamp((1.0, 0.96, 0.88, 1.0))

    def _lamp_rear(self) -> None:
        self._lamp((1.0, 0.05, 0.02, 1.0))

    def _plate(self) -> None:
        self._base(roughness=0.4)

    def _skin(self) -> None:
        self._base(metallic=0.0, roughness=0.5)
        self._in("Subsurface Weight", 0.25)
        self._in("Subsurface Radius", (1.0, 0.35, 0.2))
        self._in("Subsurface Scale", 0.01)

    def _cloth(self) -> None:
        t = self.t
        weave = t.noise(400.0, 1.0)
        self._base(color=t.mix(t.op("MULTIPLY", weave, 0.25), self.color, _scaled(self.color, 0.7)), metallic=0.0,
                   roughness=0.9)
        self._in("Sheen Weight", 0.4)
        self._in("Sheen Roughness", 0.4)

    def _hair(self) -> None:
        self._base(metallic=0.0, roughness=0.55)
        self._in("Normal", self.t.bump(self.t.noise(300.0, 1.0), 0.3, 0.002))

    def _leather(self) -> None:
        self._base(metallic=0.0, roughness=0.45)

    def _metal(self) -> None:
        t = self.t
        rough = t.lerp(t.noise(8.0, 4.0), max(self.roughness - 0.15, 0.1), min(self.roughness + 0.15, 0.9))
        self._base(metallic=max(self.metallic, 0.6), roughness=rough)

    def _sign_face(self) -> None:
        self._base(metallic=0.0, roughness=0.35)
        self._in("Coat Weight", 0.6)

    def _snowy(self, color, rough, snow_key: str = "snow"):
        """Blend colour and roughness towards fresh snow by the ``snow`` value."""
        t = self.t
        s = self.value(snow_key)
        return t.mix(s, color, SNOW), t.lerp(s, rough, 0.95)

    def _asphalt(self) -> None:
        t = self.t
        grain = t.noise(40.0, 2.0)
        patches = t.noise(0.35, 3.0)
        wear = t.ramp(t.noise(0.12, 2.0), 0.45, 0.7)  # lighter, polished, worn areas
        dry = t.mix(t.op("MULTIPLY", grain, 0.5), _scaled(self.color, 0.8), _scaled(self.color, 1.25))
        dry = t.mix(t.op("MULTIPLY", patches, 0.6), dry, _scaled(self.color, 0.85))
        dry = t.mix(t.op("MULTIPLY", wear, 0.5), dry, _scaled(self.color, 1.35))
        dry_rough = t.lerp(grain, 0.8, 0.95)
        # wet: darker, a rough mirror; puddles (a thresholded noise) are smooth water
        wet = self.value("wet")
        puddle = t.op("MULTIPLY", t.ramp(t.noise(0.25, 2.0), 0.55, 0.6), wet)
        col = t.mix(t.op("MULTIPLY", wet, 0.55), dry, (0.0, 0.0, 0.0, 1.0))
        col = t.mix(t.op("MULTIPLY", puddle, 0.4), col, (0.0, 0.0, 0.0, 1.0))
        rough = t.lerp(wet, dry_rough, 0.22)
        rough = t.lerp(puddle, rough, 0.02)
        icy = self.value("icy")
        col = t.mix(icy, col, (0.42, 0.46, 0.52, 1.0))
        rough = t.lerp(icy, rough, 0.06)
        col, rough = self._snowy(col, rough)
        self._base(color=col, metallic=0.0, roughness=rough)
        self._in("Normal", t.bump(t.op("MULTIPLY", grain, t.op("SUBTRACT", 1.0, puddle)), 0.25, 0.01))

    def _lane_paint(self) -> None:
        t = self.t
        worn = t.ramp(t.noise(3.0, 3.0), 0.55, 0.75)
        col = t.mix(t.op("MULTIPLY", worn, 0.7), self.color, (0.2, 0.2, 0.21, 1.0))
        rough = t.lerp(self.value("wet"), 0.6, 0.15)
        col, rough = self._snowy(col, rough)
        self._base(color=col, metallic=0.0, roughness=rough)

    def _ground(self) -> None:
        t = self.t
        c = self.color
        n = t.noise(2.0, 4.0)
        col = t.mix(n, _scaled(c, 0.75), _scaled(c, 1.2))
        col, rough = self._snowy(col, 0.95)
        self._base(color=col, metallic=0.0, roughness=rough)
        self._in("Normal", t.bump(t.noise(25.0, 3.0), 0.4, 0.02))

    def _concrete(self, slabs: bool) -> None:
        t = self.t
        col = t.mix(t.noise(6.0, 3.0), _scaled(self.color, 0.85), _scaled(self.color, 1.1))
        if slabs:
            brick = t.node("ShaderNodeTexBrick", {"Color1": (1, 1, 1, 1), "Color2": (0.95, 0.95, 0.95, 1),
                                                  "Mortar": (0.55, 0.55, 0.55, 1), "Scale": 1.0,
                                                  "Mortar Size": 0.01, "Brick Width": 1.5, "Row Height": 1.5})
            t.put(brick.inputs["Vector"], t.coords())
            col = t.node("ShaderNodeMixRGB", {"Fac": 1.0, "Color1": col, "Color2": brick.outputs["Color"]},
                         blend_type="MULTIPLY").outputs["Color"]
        wet = self.value("wet")
        col = t.mix(t.op("MULTIPLY", wet, 0.35), col, (0.0, 0.0, 0.0, 1.0))
        rough = t.lerp(wet, 0.9, 0.35)
        col, rough = self._snowy(col, rough)
        self._base(color=col, metallic=0.0, roughness=rough)

    def _pavement(self) -> None:
        self._concrete(slabs=True)

    def _kerb(self) -> None:
        self._concrete(slabs=False)

    def _facade(self) -> None:
        t = self.t
        c = self.color
        if c[0] > c[1] + 0.12:  # reddish walls are brick
            brick = t.node("ShaderNodeTexBrick", {"Color1": _scaled(c, 1.0), "Color2": _scaled(c, 0.78),
                                                  "Mortar": (0.7, 0.68, 0.64, 1.0), "Scale": 1.0,
                                                  "Mortar Size": 0.012, "Brick Width": 0.25, "Row Height": 0.075})
            t.put(brick.inputs["Vector"], t.coords())
            self._base(color=brick.outputs["Color"], metallic=0.0, roughness=0.9)
            self._in("Normal", t.bump(brick.outputs["Factor"], 0.3, 0.01))
        else:  # plaster with stains
            col = t.mix(t.noise(1.5, 4.0), _scaled(c, 0.85), _scaled(c, 1.08))
            self._base(color=col, metallic=0.0, roughness=0.9)
            self._in("Normal", t.bump(t.noise(30.0, 3.0), 0.2, 0.01))

    def _bark(self) -> None:
        t = self.t
        self._base(color=t.mix(t.noise(20.0, 4.0), _scaled(self.color, 0.7), _scaled(self.color, 1.2)),
                   metallic=0.0, roughness=0.9)
        self._in("Normal", t.bump(t.noise(12.0, 5.0), 0.6, 0.02))

    def _foliage(self) -> None:
        t = self.t
        leaves = t.noise(6.0, 4.0)
        self._base(color=t.mix(leaves, _scaled(self.color, 0.6), _scaled(self.color, 1.3)), metallic=0.0,
                   roughness=0.75)
        self._in("Subsurface Weight", 0.15)
        self._in("Normal", t.bump(leaves, 0.8, 0.1))


class World:
    """Blender's sky texture (multiple scattering) for the sun's elevation and azimuth,
    blended towards an overcast grey by the cloud cover, with a faint night floor."""

    def __init__(self):
        self.world = bpy.data.worlds.new("sky")
        if hasattr(self.world, "use_nodes"):
            self.world.use_nodes = True
        # the sky (no sun disc) is smooth: a coarse importance map suffices, and the default
        # (auto, 1024) costs seconds per environment change on a CPU
        self.world.cycles.sampling_method = "MANUAL"
        self.world.cycles.sample_map_resolution = 256
        nt = self.world.node_tree
        for n in list(nt.nodes):
            nt.nodes.remove(n)
        t = Tree(nt)
        self.sky = t.node("ShaderNodeTexSky", sky_type="MULTIPLE_SCATTERING")
        self.sky.sun_disc = False
        self.cloud = t.node("ShaderNodeValue")
        self.grey = t.node("ShaderNodeRGB")
        mixed = t.mix(self.cloud.outputs[0], self.sky.outputs["Color"], self.grey.outputs[0])
        self.floor = t.node("ShaderNodeRGB")
        col = t.node("ShaderNodeMixRGB", {"Fac": 1.0, "Color1": mixed, "Color2": self.floor.outputs[0]},
                     blend_type="ADD").outputs["Color"]
        self.bg = t.node("ShaderNodeBackground", {"Color": col})
        out = t.node("ShaderNodeOutputWorld")
        nt.links.new(self.bg.outputs["Background"], out.inputs["Surface"])

    def set(self, elevation_deg: float, azimuth_deg: float, cloud: float, day: float, strength: float) -> None:
        """``day``: the daylight factor (0 night … 1 day) of oddsuite's daylight effect."""
        assign(self.sky, "sun_elevation", math.radians(max(elevation_deg, -10.0)))
        # Blender's sun_rotation turns the sun about z from +y towards -x? It is measured from
        # the +y axis clockwise seen from above; oddsuite's azimuth is from +x towards +y
        assign(self.sky, "sun_rotation", math.radians(90.0 - azimuth_deg) % (2 * math.pi))
        g = 0.6 * day * day + 0.002
        assign(self.grey.outputs[0], "default_value", (g, g, g * 1.03, 1.0))
        assign(self.cloud.outputs[0], "default_value", min(max(cloud, 0.0), 1.0) * 0.85)
        assign(self.floor.outputs[0], "default_value", (0.0008, 0.001, 0.002, 1.0))
        assign(self.bg.inputs["Strength"], "default_value", strength)


def material(index: int, spec: dict) -> Material:
    return Material(index, spec)


def world() -> World:
    return World()
