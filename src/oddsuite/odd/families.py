"""The asset families of the built-in object classes, by class key: the names a spec's
object slot can be searched over (``odd.samplers.search.object_dimensions``) and the ROI
table's ``asset`` column reads as ``key/family``.

Only the names live here, at the bottom of the import chain (ARCHITECTURE.md): the shapes
they stand for are built by ``scenes.assets`` (``CAR_SHAPES``, ``PERSON_VARIANTS``,
``BIKES``), which checks at import that its tables hold exactly these names. Each family
is drawn with equal probability when a scene is generated.

A searched object also gets a look (``LOOKS``): which of a fixed set of appearances of
its family it wears, so that colour and proportions are searched coordinates instead of
noise from the scene seed.
"""
from __future__ import annotations

#: class key -> its families, sorted (the order ``scenes.assets`` draws them in)
ASSET_FAMILIES: dict[str, tuple[str, ...]] = {
    "car": ("city", "coupe", "crossover", "estate", "hatchback", "minivan", "offroad", "pickup", "sedan", "sports",
            "suv", "taxi", "van"),
    "person": ("backpack", "child", "coat", "elderly", "heavy", "jogger", "phone", "skirt", "standing", "walking"),
    "bicycle": ("city", "mountain", "road"),
}

#: the searched appearances of a built-in asset: a search chooses one per object slot
#: (``objects.KEY[J].look``, 0 to LOOKS - 1), and look ``k`` seeds the asset's own draws
#: (paint or clothing colours, proportions, rims, pose details) with ``k`` alone, so look
#: ``k`` of a family is the same object in every scene and suite
LOOKS = 16
