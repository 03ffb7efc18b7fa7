"""Build the C engine and its Cython wrapper (ssdface._core), the test hooks
(ssdface._testing, which call into _core), and embed the weights blob when
the model's .npy files are found at build time.

Compiler flags are safe for any CPU of the target architecture: no
-march=native. Faster instruction sets are chosen at run time, per kernel.

A wheel's extensions are stripped of their debug information and of any
run-time library path to the builder's Python. The blob is packed anew on
every build (mode 0644) with ssdface/data/build_info.json beside it, which
tells the installed package whether its build embedded weights; a build that
finds none warns loudly on stderr (or fails, with SSDFACE_REQUIRE_WEIGHTS=1).
"""

import atexit
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import threading
from concurrent.futures import ThreadPoolExecutor
from glob import glob

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:  # setuptools >= 69 vendors its own copy of distutils' dep_util
    from setuptools.modified import newer_group
except ImportError:  # pragma: no cover - older setuptools
    from distutils.dep_util import newer_group


def _let_old_setuptools_read_pep639():
    """pyproject.toml gives ``license`` as an SPDX expression and
    ``license-files`` (PEP 639), which setuptools reads from version 77 on.
    An older one (Debian 12 has 66), used by a build without isolation or by
    ``python setup.py build_ext --inplace``, refuses them: hand it the same
    facts in its own terms (``license = {text = ...}`` and
    ``[tool.setuptools] license-files``). pip's isolated builds fetch a newer
    setuptools and never come here."""
    import setuptools

    try:
        major = int(setuptools.__version__.split(".")[0])
    except ValueError:
        return
    if major >= 77:
        return
    from setuptools.config import pyprojecttoml

    load_file = pyprojecttoml.load_file

    def load_file_pre_pep639(filepath):
        data = load_file(filepath)
        project = data.get("project", {})
        if isinstance(project.get("license"), str):
            project["license"] = {"text": project["license"]}
        files = project.pop("license-files", None)
        if files is not None:
            data.setdefault("tool", {}).setdefault("setuptools", {})["license-files"] = files
        return data

    pyprojecttoml.load_file = load_file_pre_pep639


_let_old_setuptools_read_pep639()

HERE = os.path.dirname(os.path.abspath(__file__))
CORE = "ssdface._core"  # the extension holding the C engine
BLOB_NAME = "ssd_mobilenetv2_face.blob"
BUILD_INFO_NAME = "build_info.json"
LOCAL_WEIGHTS = os.path.join("weights", "ssd_mobilenetv2_face_nhwc")
# Set to 1 to make a build that finds no weights fail instead of warning.
REQUIRE_ENV = "SSDFACE_REQUIRE_WEIGHTS"
# Set to 1 to keep the debug information in a wheel's extensions.
KEEP_DEBUG_ENV = "SSDFACE_KEEP_DEBUG"

NO_WEIGHTS_WARNING = """
{rule}
ssdface: WARNING: THIS BUILD EMBEDS NO MODEL WEIGHTS
  {why}.
  The package builds and installs, but ssdface.Detector() will raise
  WeightsNotFoundError until it is given weights at run time:
  Detector(weights=PATH), $SSDFACE_WEIGHTS, or a blob written once with
  `ssdface pack NPY_DIR` to ~/.cache/ssdface/{blob}.
  To embed them, build with SSDFACE_WEIGHTS=/path/to/ssd_mobilenetv2_face_nhwc,
  the folder of the model's 144 .npy files (webmachinelearning/test-data,
  models/ssd_mobilenetv2_face_nhwc/weights/, Apache-2.0), and with pip add
  --no-cache-dir so that it cannot reuse a weightless wheel from its cache.
  Set {require}=1 to make a build without weights fail.
{rule}
"""


def weights_source():
    """The .npy folder to embed, as ``(path, label, why_not)``.

    ``$SSDFACE_WEIGHTS`` (a folder) first, else ``weights/ssd_mobilenetv2_face_nhwc/``
    when it holds .npy files. ``label`` says which (it goes into the build
    info, without the builder's paths); when neither is there, path and label
    are None and ``why_not`` says why.
    """
    env = os.environ.get("SSDFACE_WEIGHTS")
    if env and os.path.isdir(env):
        return os.path.abspath(env), "$SSDFACE_WEIGHTS", None
    local = os.path.join(HERE, LOCAL_WEIGHTS)
    if os.path.isdir(local) and glob(os.path.join(local, "*.npy")):
        return local, LOCAL_WEIGHTS.replace(os.sep, "/") + "/", None
    if not env:
        why = "$SSDFACE_WEIGHTS is not set"
    elif os.path.exists(env):
        why = f"$SSDFACE_WEIGHTS ({env}) is not a folder of .npy files"
    else:
        why = f"$SSDFACE_WEIGHTS ({env}) does not exist"
    return None, None, f"{why}, and {LOCAL_WEIGHTS}{os.sep} holds no .npy files"


def _flag(name):
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _warn(text):
    """Print to stderr, flushed, so that pip -v and python -m build show it."""
    sys.stdout.flush()
    print(text, file=sys.stderr, flush=True)


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class BuildExtEmbeddingWeights(build_ext):
    """build_ext, then pack the weights into ssdface/data/ next to the built
    extension (it packs with the engine's own packer, so it runs after the
    build and in a fresh interpreter), and write ssdface/data/build_info.json,
    which tells the installed package whether its build embedded weights.

    The blob is packed anew on every build, never reused from an earlier one
    in build/: packing takes about a second, and checking an existing blob
    against the .npy files would cost as much (its checksum covers the packed
    layout, so it has to be packed to be compared). A build that finds no
    weights removes any blob an earlier build left there, and warns loudly.
    """

    def run(self):
        # setuptools clears self.inplace while it builds: decide now.
        in_place = bool(self.inplace or getattr(self, "editable_mode", False))
        src, label, why_not = weights_source()
        if src is None and _flag(REQUIRE_ENV):
            raise SystemExit(f"ssdface: error: {why_not}; ${REQUIRE_ENV} is set, so a build "
                             "without weights fails")
        super().run()
        if os.environ.get("SSDFACE_SANITIZE", "").strip() not in ("", "0"):
            # The packer imports the new module, which cannot load without the
            # sanitizer runtimes preloaded: .ci/sanitize.sh packs the blob itself.
            print("ssdface: sanitizer build; weights not embedded")
            return
        ext_path = os.path.abspath(self.get_ext_fullpath(CORE))
        if not in_place:
            for ext in self.extensions:
                self._strip_debug(os.path.abspath(self.get_ext_fullpath(ext.name)))
        root = os.path.dirname(os.path.dirname(ext_path))
        data_dir = os.path.join(root, "ssdface", "data")
        dst = os.path.join(data_dir, BLOB_NAME)
        os.makedirs(data_dir, exist_ok=True)
        if src is None:
            if os.path.exists(dst):
                os.unlink(dst)  # an earlier build's blob: not from this build's inputs
            self._write_build_info(data_dir, {"weights_embedded": False, "reason": why_not})
            warning = NO_WEIGHTS_WARNING.format(rule="*" * 78, why=why_not, blob=BLOB_NAME,
                                                require=REQUIRE_ENV)
            _warn(warning)
            # Say it again as the build's last words, below the packaging log.
            atexit.register(_warn, warning)
            return
        code = ("import sys; sys.path.insert(0, sys.argv[1]); "
                "from ssdface.weights import pack_weights; pack_weights(sys.argv[2], sys.argv[3])")
        # The packer needs numpy, which an isolated build has only on this
        # process's sys.path: hand the whole path down.
        path = [root, HERE, *(p for p in sys.path if p)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
        subprocess.check_call([sys.executable, "-c", code, root, src, dst], env=env)
        # Readable by all whatever the packer or the umask did: the wheel
        # records this mode and pip installs files with it.
        os.chmod(dst, 0o644)
        self._write_build_info(data_dir, {
            "weights_embedded": True,
            "weights_source": label,
            "blob": BLOB_NAME,
            "blob_size": os.path.getsize(dst),
            "blob_sha256": _sha256(dst),
        })
        print(f"ssdface: embedded weights from {src} as {dst}", flush=True)

    @staticmethod
    def _write_build_info(data_dir, info):
        path = os.path.join(data_dir, BUILD_INFO_NAME)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2, sort_keys=True)
            f.write("\n")
        os.chmod(path, 0o644)

    @staticmethod
    def _strip_debug(ext_path):
        """Drop the debug information (Python's CFLAGS hold -g) from a
        wheel's extension; editable and in-place builds keep it. Done on the
        built file rather than at link time so that an extension that
        setuptools found up to date, and did not link again, is stripped too.
        The symbol table stays: profilers and crash backtraces keep names."""
        if _flag(KEEP_DEBUG_ENV) or not sys.platform.startswith("linux"):
            return
        strip = os.environ.get("STRIP") or shutil.which("strip")
        if not strip:
            _warn("ssdface: warning: no `strip` found; the extension keeps its debug information")
            return
        before = os.path.getsize(ext_path)
        subprocess.check_call([strip, "--strip-debug", ext_path])
        print(f"ssdface: stripped debug information from {ext_path} "
              f"({before} -> {os.path.getsize(ext_path)} bytes)", flush=True)


BASE_FLAGS = ["-O3", "-std=gnu11", "-Wall", "-Wno-unused-function",
              # The quantized kernels round every float product on its own
              # (kernels_qu8.h): no contraction into fused multiply-adds.
              "-ffp-contract=off"]


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

def _isa_flags():
    """Per-variant compiler flags, read from the one list of kernel variants
    (csrc/kernels/isa_list.h): ``X(name, features, "flags")``; a variant
    with flags is compiled apart with them, from csrc/kernels/<name>.c, and
    dispatch.c runs it only on a CPU that has the instructions."""
    import re

    with open(os.path.join(HERE, "csrc", "kernels", "isa_list.h"), encoding="utf-8") as f:
        text = f.read()
    return {f"csrc/kernels/{name}.c": flags.split()
            for name, flags in re.findall(r'X\((\w+),[^,"]*,\s*"([^"]*)"\)', text) if flags}


# Kernel variants compiled with their own instruction-set flags (the x86
# ones: the portable variants have none and use the base flags).
X86_VARIANTS = _isa_flags()


def is_x86_64():
    return platform.machine().lower() in ("x86_64", "amd64")


def c_sources():
    """Core, model and portable kernel sources (compiled with the base flags)."""
    files = (glob(os.path.join("csrc", "*.c")) + glob(os.path.join("csrc", "models", "*.c"))
             + glob(os.path.join("csrc", "kernels", "*.c")))
    return sorted(f.replace(os.sep, "/") for f in files if f.replace(os.sep, "/")
                  not in X86_VARIANTS)


def _without_python_rpath(command):
    """The link command less a run-time search path to the Python
    installation's own library folder, which some Pythons (pyenv's, built
    with --enable-shared) put in LDSHARED for libpython. The extension does
    not link libpython, and a wheel must not carry the builder's paths."""
    libdirs = {os.path.normpath(d) for d in (sysconfig.get_config_var("LIBDIR"),
                                               os.path.join(sys.base_prefix, "lib")) if d}
    kept = []
    for arg in command:
        for prefix in ("-Wl,-rpath,", "-Wl,-rpath=", "-Wl,-R,", "-Wl,-R"):
            if arg.startswith(prefix) and os.path.normpath(arg[len(prefix):]) in libdirs:
                break
        else:
            kept.append(arg)
    return kept


def build_jobs():
    """Compiler processes run at once: ``$SSDFACE_BUILD_JOBS``, else one per
    CPU this process may use. The build compiles ~30 files, a few of them
    large (the Cython modules, the kernel variants): one at a time, it
    leaves all but one core idle."""
    env = os.environ.get("SSDFACE_BUILD_JOBS", "").strip()
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def source_flags(source):
    """The flags a source gets after the extension's: a kernel variant's
    instruction sets; under the sanitizer, -O0 for the C that Cython
    generates (ssdface/*.c): instrumented all the same, its -O1 compile took
    ~85 of the sanitizer build's CPU-seconds, and the tests' time is spent in
    the C engine, not in the wrappers."""
    flags = list(X86_VARIANTS.get(source, []))
    if SANITIZE_COMPILE and source.startswith("ssdface/") and source.endswith(".c"):
        flags.append("-O0")
    return flags


def _compile_in_parallel(compiler, gate):
    """Replace ``compiler.compile`` by one that compiles the sources of a
    call at once, at most ``gate``'s count of compiler processes in all
    (the extensions build at the same time, each with its own call), the
    largest first. A per-ISA kernel file gets its variant's flags after the
    others. Else as distutils' CCompiler.compile (which it reuses, but for
    the loop)."""

    def compile(sources, output_dir=None, macros=None, include_dirs=None, debug=0,
                extra_preargs=None, extra_postargs=None, depends=None):
        macros, objects, extra_postargs, pp_opts, build = compiler._setup_compile(
            output_dir, macros, include_dirs, sources, depends, extra_postargs)
        cc_args = compiler._get_cc_args(pp_opts, debug, extra_preargs)

        def one(obj):
            src, ext = build[obj]
            flags = source_flags(os.path.normpath(src).replace(os.sep, "/"))
            with gate:
                compiler._compile(obj, src, ext, cc_args, extra_postargs + flags, pp_opts)

        todo = sorted((obj for obj in objects if obj in build),
                      key=lambda obj: -os.path.getsize(build[obj][0]))
        if todo:
            with ThreadPoolExecutor(len(todo)) as pool:
                for future in [pool.submit(one, obj) for obj in todo]:
                    future.result()
        return objects

    compiler.compile = compile


class BuildExt(BuildExtEmbeddingWeights):
    """Compile in parallel (build_jobs()): the extensions at once, and the
    sources of each at once. The per-ISA kernel files are sources of the
    extension that holds the C engine (``ssdface._core``), each compiled
    with its variant's flags."""

    def build_extensions(self):
        if self.compiler.compiler_type == "unix":
            jobs = build_jobs()
            _compile_in_parallel(self.compiler, threading.BoundedSemaphore(jobs))
            if jobs > 1:
                self.parallel = jobs
        else:  # no per-file flags: no x86 variants
            for ext in self.extensions:
                ext.sources = [f for f in ext.sources if f not in X86_VARIANTS]
                ext.define_macros = [m for m in ext.define_macros
                                     if m[0] != "SSDF_X86_KERNELS"]
        super().build_extensions()

    def build_extension(self, ext):
        ext_path = self.get_ext_fullpath(ext.name)
        if not (self.force or newer_group([*ext.sources, *ext.depends], ext_path, "newer")):
            print(f"ssdface: {ext_path} is up to date, not rebuilt", flush=True)
            return
        if self.compiler.compiler_type == "unix":
            self.compiler.linker_so = _without_python_rpath(self.compiler.linker_so)
        super().build_extension(ext)


# What the C and Cython sources read: a change rebuilds.
HEADERS = (glob("csrc/*.h") + glob("csrc/kernels/*.h") + glob("ssdface/*.pxd")
           + glob("ssdface/*.pxi"))

# The C engine and its wrapper: every C source is compiled here, once.
core = Extension(
    CORE,
    # With the x86 kernel variants, which BuildExt compiles with their flags.
    sources=["ssdface/_core.pyx", *c_sources(), *(X86_VARIANTS if is_x86_64() else [])],
    include_dirs=["csrc"],
    define_macros=[("SSDF_X86_KERNELS", "1")] if is_x86_64() else [],
    extra_compile_args=BASE_FLAGS,
    extra_link_args=["-lpthread", "-lm", *SANITIZE_LINK],
    # A change of this file's flags relinks too.
    depends=HEADERS + ["setup.py"],
)

# The test hooks (kernels, fusion, checksum): no C source of their own. They
# call _core's C functions through the cdef functions of ssdface/_core.pxd
# (Cython's cross-module calls), so the engine is neither compiled nor
# linked twice; they read the headers for types and static inline helpers.
testing = Extension(
    "ssdface._testing",
    sources=["ssdface/_testing.pyx"],
    include_dirs=["csrc"],
    define_macros=core.define_macros,
    extra_compile_args=BASE_FLAGS,
    extra_link_args=SANITIZE_LINK,
    depends=HEADERS + ["setup.py"],
)

setup(
    ext_modules=cythonize([core, testing], compiler_directives={"language_level": "3"},
                          nthreads=build_jobs()),
    cmdclass={"build_ext": BuildExt},
)
