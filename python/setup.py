"""setup.py — only to record, at install time, the checkout the package came from, so that a
pip-installed graft finds the libgraft.so of that checkout's build/ folder (pyproject.toml holds
everything else)."""
import os

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPy(build_py):
    def run(self):
        super().run()
        checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        target = os.path.join(self.build_lib, "graft", "_source.py")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            f.write('"""Written by setup.py: the checkout this package was installed from."""\n')
            f.write(f"SOURCE_DIR = {checkout!r}\n")


setup(cmdclass={"build_py": BuildPy})
