"""The training engine: the loop, the recipes (SFT, DPO), run setup → train → save.

The public entry point is the function ``tuneforge.train`` (defined in ``tuneforge/__init__.py``); this
package is named ``training`` so that name is plainly a function.
"""
