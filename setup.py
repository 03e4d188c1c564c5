"""Build hook: ship the top-level configs/ and tasks/ inside the wheel as pbrl/_resources/."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithResources(build_py):
    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent
        for kind in ("configs", "tasks"):
            target = Path(self.build_lib) / "pbrl" / "_resources" / kind
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(root / kind, target)


setup(cmdclass={"build_py": BuildWithResources})
