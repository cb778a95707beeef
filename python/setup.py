"""setup.py — builds libzoff with CMake from the repository around this folder and bundles it
into the package as zoff/lib/libzoff.so (pip install ./python).

Environment knobs:
  ZOFF_CMAKE_ARGS       extra CMake arguments (e.g. "-DZOFF_CUDA=OFF" for a faster build)
  ZOFF_CMAKE_BUILD_DIR  where CMake builds (default python/build/libzoff, reused between installs)
  ZOFF_SKIP_BUILD=1     bundle nothing: the package then loads libzoff from ZOFF_LIBRARY, a
                        build tree of the repository, or the system library path
"""

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BinaryDistribution(Distribution):
    """The wheel carries a native library: tag it for this platform, not as pure Python."""

    def has_ext_modules(self):
        return os.environ.get("ZOFF_SKIP_BUILD") != "1"


class BuildPyWithLibzoff(build_py):
    """build_py, then `cmake --build --target zoff_shared` and a copy of libzoff.so."""

    def run(self):
        super().run()
        if os.environ.get("ZOFF_SKIP_BUILD") == "1":
            print("zoff: ZOFF_SKIP_BUILD=1, libzoff not bundled")
            return
        root = HERE.parent
        if not (root / "CMakeLists.txt").is_file() or not (root / "include" / "zoff.h").is_file():
            raise SystemExit(
                f"zoff: the zoff repository was not found around {HERE}; install from a "
                "checkout (pip install ./python) or set ZOFF_SKIP_BUILD=1 and ZOFF_LIBRARY")
        if shutil.which("cmake") is None:
            raise SystemExit("zoff: cmake not found; run scripts/deps.sh first")
        build_dir = Path(os.environ.get("ZOFF_CMAKE_BUILD_DIR", HERE / "build" / "libzoff"))
        args = ["-DZOFF_BUILD_TESTS=OFF", "-DZOFF_BUILD_BENCH=OFF"]
        args += shlex.split(os.environ.get("ZOFF_CMAKE_ARGS", ""))
        subprocess.check_call(["cmake", "-S", str(root), "-B", str(build_dir)] + args)
        subprocess.check_call(["cmake", "--build", str(build_dir), "--target", "zoff_shared",
                               "-j", str(os.cpu_count() or 1)])
        lib = (build_dir / "libzoff.so").resolve()
        dest = Path(self.build_lib) / "zoff" / "lib"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lib, dest / "libzoff.so")
        print(f"zoff: bundled {lib} as {dest / 'libzoff.so'}")


setup(distclass=BinaryDistribution, cmdclass={"build_py": BuildPyWithLibzoff})
