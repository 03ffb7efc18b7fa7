"""Build the C engine and its Cython wrapper, and embed the weights blob when
the model's .npy files are found at build time.

Compiler flags are safe for any CPU of the target architecture: no
-march=native. Faster instruction sets are chosen at run time, per kernel.
"""

import os
import platform
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
        if os.environ.get("SSDFACE_SANITIZE", "").strip() not in ("", "0"):
            # The packer imports the new module, which cannot load without the
            # sanitizer runtimes preloaded: .ci/sanitize.sh packs the blob itself.
            print("ssdface: sanitizer build; weights not embedded")
            return
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
        # The packer needs numpy, which an isolated build has only on this
        # process's sys.path: hand the whole path down.
        path = [root, HERE, *(p for p in sys.path if p)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
        subprocess.check_call([sys.executable, "-c", code, root, src, dst], env=env)
        print(f"ssdface: embedded weights from {src} as {dst}")


BASE_FLAGS = ["-O3", "-std=gnu11", "-Wall", "-Wno-unused-function"]


def sanitize_flags():
    """Opt-in sanitizer build (.ci/sanitize.sh): ``SSDFACE_SANITIZE=1`` means
    ``address,undefined``; any other value is the ``-fsanitize=`` list. The
    flags go after the base ones (so their -O level wins) on every compile,
    the per-ISA kernel files included, and on the link. The module then needs
    the sanitizer runtimes preloaded (LD_PRELOAD) to be imported."""
    value = os.environ.get("SSDFACE_SANITIZE", "").strip()
    if value in ("", "0"):
        return [], []
    sanitizers = "address,undefined" if value == "1" else value
    # -fno-wrapv: Python's own CFLAGS carry -fwrapv, which makes signed
    # overflow defined and so hides it from UBSan; the C core is plain C11
    # (the ARM check builds it without -fwrapv), where it is a bug.
    compile_flags = [f"-fsanitize={sanitizers}", "-fno-omit-frame-pointer", "-g", "-O1",
                     "-fno-wrapv"]
    if "undefined" in sanitizers.split(","):
        compile_flags.append("-fno-sanitize-recover=undefined")
    return compile_flags, [f"-fsanitize={sanitizers}"]


SANITIZE_COMPILE, SANITIZE_LINK = sanitize_flags()
BASE_FLAGS += SANITIZE_COMPILE

# Kernel variants compiled with their own instruction-set flags; dispatch.c
# runs each only on a CPU that has the instructions.
X86_VARIANTS = {
    "csrc/kernels/avx2.c": ["-mavx2", "-mfma"],
    "csrc/kernels/avx512.c": ["-mavx512f", "-mavx2", "-mfma"],
}


def is_x86_64():
    return platform.machine().lower() in ("x86_64", "amd64")


def c_sources():
    """Core and portable kernel sources (compiled with the base flags)."""
    files = glob(os.path.join("csrc", "*.c")) + glob(os.path.join("csrc", "kernels", "*.c"))
    return sorted(f.replace(os.sep, "/") for f in files if f.replace(os.sep, "/")
                  not in X86_VARIANTS)


class BuildExt(BuildExtEmbeddingWeights):
    """Compile the per-ISA kernel files with their flags, then link them in."""

    def build_extension(self, ext):
        if is_x86_64() and self.compiler.compiler_type == "unix":
            objects = []
            for source, flags in X86_VARIANTS.items():
                objects += self.compiler.compile(
                    [source], output_dir=self.build_temp, include_dirs=ext.include_dirs,
                    macros=ext.define_macros, extra_postargs=BASE_FLAGS + flags,
                    depends=glob("csrc/kernels/*.h"))
            ext.extra_objects = objects
        super().build_extension(ext)


extension = Extension(
    "ssdface._core",
    sources=["ssdface/_core.pyx", *c_sources()],
    include_dirs=["csrc"],
    define_macros=[("SSDF_X86_KERNELS", "1")] if is_x86_64() else [],
    extra_compile_args=BASE_FLAGS,
    extra_link_args=["-lpthread", "-lm", *SANITIZE_LINK],
    depends=glob("csrc/*.h") + glob("csrc/kernels/*.h"),
)

setup(
    ext_modules=cythonize([extension], compiler_directives={"language_level": "3"}),
    cmdclass={"build_ext": BuildExt},
)
