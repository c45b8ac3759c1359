"""graft — transfer learning from YAML recipes, compiled to OpenCL kernels, from Python.

Pure Python over libgraft.so through ctypes (see graft/_lib.py for how the library is found).
"""
from ._api import (GraftError, Recipe, RecipeError, bench_report, devices, library_path,
                   library_version, report, runs_table, schema, version_text)

__version__ = "0.1.0"
__all__ = ["GraftError", "Recipe", "RecipeError", "devices", "library_path", "library_version",
           "version_text", "report", "runs_table", "bench_report", "schema", "__version__"]
