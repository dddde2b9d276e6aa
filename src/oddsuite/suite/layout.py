"""The names of a suite's files and folders (docs/FORMAT.md): the one place they are spelled.

Every module that reads or writes a suite takes the names from here. Imports nothing.
"""
from __future__ import annotations

#: the format tag of a suite's manifest and annotations.json ``info.version``
FORMAT = "oddsuite-suite/1"
#: the format tag of a results or model folder's manifest (written by ``oddsuite sign``)
FOLDER_FORMAT = "oddsuite-folder/1"
#: the format tag of a detached signature file
SIGNATURE_FORMAT = "oddsuite-signature/1"

ANNOTATIONS = "annotations.json"  # COCO ground truth plus oddsuite fields
ANNOTATIONS_FULL = "annotations_full.json"  # the same, full-scene images only: for plain COCOeval (path 1)
SCENES = "scenes.parquet"  # one row per image: what it shows
ROIS = "rois.parquet"  # one row per (scene, ROI)
SPEC = "spec.yaml"  # the spec text the suite was made from
MANIFEST = "manifest.json"  # SHA-256 of every file above and every image; the suite's identity
SIGNATURE = "manifest.sig"  # detached Ed25519 signature over the canonical manifest
IMAGES = "images"  # images/SSSSSS/VARIANT_MODE_SUBSET.png
STATE = ".state"  # resume bookkeeping: never hashed, never part of the evidence
JOB = f"{STATE}/job.json"  # what the folder's scenes belong to (spec, seed, plan, scene count)
LOCK = f"{STATE}/lock"  # held (flock) by the one generate run working on the folder

#: the tables a finished suite has beside its images, in the order they are written
TABLES = (ANNOTATIONS, ANNOTATIONS_FULL, SCENES, ROIS, SPEC)
#: files and folders a manifest never lists
UNHASHED_FILES = frozenset({MANIFEST, SIGNATURE})
UNHASHED_DIRS = frozenset({STATE})
#: scene ids are written with six digits: a suite holds at most this many scenes
MAX_SCENES = 1_000_000


def scene_folder(scene_id: int) -> str:
    """The folder of one scene's images, relative to the suite."""
    return f"{IMAGES}/{scene_id:06d}"


def scene_record(scene_id: int) -> str:
    """The resume record of one finished scene, relative to the suite."""
    return f"{STATE}/scene_{scene_id:06d}.json"
