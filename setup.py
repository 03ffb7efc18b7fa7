"""Build the C engine and its Cython wrapper, and embed the weights blob when
the model's .npy files are found at build time.

Compiler flags are safe for any CPU of the target architecture: no
-march=native. Faster instruction sets are chosen at run time, per kernel.
"""

import os
import subprocess
import sys
from glob import glob

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
BLOB_NAME = "ssd_mobilenetv2_face.blob"


def weights_source():
    """The .npy folder to embed: $SSDFACE_WEIGHTS (a folder) or weights/."""
    env = os.environ.get("SSDFACE_WEIGHTS")
    if env and os.path.isdir(env):
        return os.path.abspath(env)
    local = os.path.join(HERE, "weights", "ssd_mobilenetv2_face_nhwc")
    if os.path.isdir(local) and glob(os.path.join(local, "*.npy")):
        return local
    return None


class BuildExtEmbeddingWeights(build_ext):
    """build_ext, then pack the weights into ssdface/data/ next to the built
    extension (it packs with the engine's own packer, so it runs after the
    build and in a fresh interpreter)."""

    def run(self):
        super().run()
        src = weights_source()
        if src is None:
            print("ssdface: no weights found at build time; the package will need "
                  "$SSDFACE_WEIGHTS or Detector(weights=...)")
            return
        ext_path = os.path.abspath(self.get_ext_fullpath("ssdface._core"))
        root = os.path.dirname(os.path.dirname(ext_path))
        dst = os.path.join(root, "ssdface", "data", BLOB_NAME)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        code = ("import sys; sys.path.insert(0, sys.argv[1]); "
                "from ssdface.weights import pack_weights; pack_weights(sys.argv[2], sys.argv[3])")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, HERE]))
        subprocess.check_call([sys.executable, "-c", code, root, src, dst], env=env)
        print(f"ssdface: embedded weights from {src} as {dst}")


def c_sources():
    return sorted(glob(os.path.join("csrc", "*.c")))


extension = Extension(
    "ssdface._core",
    sources=["ssdface/_core.pyx", *c_sources()],
    include_dirs=["csrc"],
    extra_compile_args=["-O3", "-std=gnu11", "-Wall", "-Wno-unused-function"],
    extra_link_args=["-lpthread", "-lm"],
)

setup(
    ext_modules=cythonize([extension], compiler_directives={"language_level": "3"}),
    cmdclass={"build_ext": BuildExtEmbeddingWeights},
)
