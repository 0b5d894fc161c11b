"""Ships the golden sets inside the package: the repository's golden/v*/ is the source, copied to
nmref/_golden/ in every built wheel, so `nmref golden verify` and `nmref conform` work after a plain
`pip install nmref` from any directory (an editable install reads golden/ in place)."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithGolden(build_py):
    def run(self):
        super().run()
        src = Path(__file__).resolve().parent / "golden"
        dst = Path(self.build_lib) / "nmref" / "_golden"
        for d in sorted(src.glob("v*")):
            if (d / "manifest.json").is_file():
                shutil.rmtree(dst / d.name, ignore_errors=True)
                shutil.copytree(d, dst / d.name)


setup(cmdclass={"build_py": BuildPyWithGolden})
