"""Scripts for Blender's Python (``bpy`` 5.0 with NumPy 1.x): ``worker.py`` is run as a
script by the Cycles engine and imports ``shading`` beside it. Nothing in oddsuite imports
this folder; it imports only bpy, mathutils and NumPy."""
