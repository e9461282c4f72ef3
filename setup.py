# setup.py — builds shardopt and its C extension shardopt._C.
#
# Package metadata lives in pyproject.toml; this file only describes the extension and how
# to build it, because that depends on what the machine has:
#   * C sources: every csrc/**/*.c (always), C11.
#   * CBLAS (OpenBLAS) for CPU matmul when cblas.h is found, else a plain loop in C.
#   * CUDA kernels (csrc/**/*.cu, compiled by nvcc) whenever nvcc is found; cudart is linked
#     statically.  NCCL and cuBLAS, when found, are linked dynamically with an rpath; without
#     NCCL the nccl backend raises, naming what was missing (_C._nccl_missing).
#   * Gloo (csrc/**/*.cc, C++17) when gloo/allreduce.h is found.
# Environment switches (see README.md): SHARDOPT_CUDA, SHARDOPT_NCCL, SHARDOPT_GLOO, SHARDOPT_DEBUG,
# SHARDOPT_SANITIZE, SHARDOPT_CUDA_ARCHS, CUDA_HOME, NCCL_HOME, GLOO_HOME, OPENBLAS_HOME.
#
# Compilation is parallel (a thread pool over source files) and incremental per object
# (gcc/nvcc write -MMD dependency files; an object is rebuilt when a dependency is newer).
# Objects live in a build_temp folder keyed by a hash of the flags, so switching between
# normal, debug and ASan builds reuses each one's objects and only relinks.

import concurrent.futures
import glob
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

try:  # setuptools >= 60 vendors distutils here; older ones use the stdlib copy
    from setuptools.errors import CompileError, SetupError
except ImportError:  # pragma: no cover
    from distutils.errors import CompileError, DistutilsSetupError as SetupError

ROOT = os.path.dirname(os.path.abspath(__file__))
CSRC = "csrc"
SUMMARY_PREFIX = "shardopt build:"


def _env_flag(name):
    """Tri-state switch: None when unset/empty (auto-detect), else True/False."""
    v = os.environ.get(name, "").strip().lower()
    if v == "":
        return None
    if v in ("1", "yes", "on", "true"):
        return True
    if v in ("0", "no", "off", "false"):
        return False
    raise SetupError(f"{name}={os.environ[name]!r}: expected 0 or 1")


def _sources(pattern):
    # Sorted so that the link order (and thus the binary) does not depend on the filesystem.
    return sorted(glob.glob(os.path.join(CSRC, "**", pattern), recursive=True))


def _c_string(text):
    """A C string literal for a -D value (passed as one argv item, so no shell quoting)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _note(msg):
    print(f"shardopt: {msg}", flush=True)


def _nvidia_wheel_dirs():
    """Folders of the `nvidia` namespace package (pip wheels nvidia-nccl-cu13, nvidia-cublas...)."""
    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        return []
    if spec is None or spec.submodule_search_locations is None:
        return []
    return [str(p) for p in spec.submodule_search_locations]


# ------------------------------------------------------------------------------------------
# Detection.  Each finder returns a dict describing what it found, or a string saying why not.
# ------------------------------------------------------------------------------------------

def find_cblas():
    multiarch = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
    prefixes = []
    if os.environ.get("OPENBLAS_HOME"):
        prefixes.append(os.environ["OPENBLAS_HOME"])
    prefixes += ["/usr", "/usr/local", "/opt/OpenBLAS"]
    for prefix in prefixes:
        for inc in (f"{prefix}/include/{multiarch}", f"{prefix}/include",
                    f"{prefix}/include/openblas"):
            if not os.path.isfile(os.path.join(inc, "cblas.h")):
                continue
            libdirs = [d for d in (f"{prefix}/lib/{multiarch}", f"{prefix}/lib64", f"{prefix}/lib")
                       if os.path.isdir(d)]
            # OpenBLAS carries the CBLAS interface itself; a separate libcblas is the
            # reference-BLAS layout; libblas works when it is an OpenBLAS/ATLAS alternative.
            for lib in ("openblas", "cblas", "blas"):
                for d in libdirs:
                    if os.path.exists(os.path.join(d, f"lib{lib}.so")):
                        return {"include": inc, "libdir": d, "lib": lib}
            return f"cblas.h in {inc} but no libopenblas/libcblas/libblas.so next to it"
    return "cblas.h not found; apt-get install libopenblas-dev or set OPENBLAS_HOME"


def find_cuda():
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if not home:
        if os.path.exists("/usr/local/cuda/bin/nvcc"):
            home = "/usr/local/cuda"
        elif shutil.which("nvcc"):
            home = os.path.dirname(os.path.dirname(os.path.realpath(shutil.which("nvcc"))))
    if not home:
        return "nvcc not found; set CUDA_HOME"
    nvcc = os.path.join(home, "bin", "nvcc")
    if not os.path.exists(nvcc):
        return f"no nvcc in {home}/bin"
    libdir = None
    for d in ("lib64", "lib", "targets/x86_64-linux/lib"):
        if os.path.exists(os.path.join(home, d, "libcudart_static.a")):
            libdir = os.path.join(home, d)
            break
    if libdir is None:
        return f"libcudart_static.a not found under {home}"
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=True).stdout
        m = re.search(r"release (\d+\.\d+)", out)
        version = m.group(1) if m else "?"
    except (OSError, subprocess.CalledProcessError) as e:
        return f"{nvcc} does not run: {e}"
    return {"home": home, "nvcc": nvcc, "include": os.path.join(home, "include"),
            "libdir": libdir, "version": version}


def find_nccl(cuda):
    """NCCL from NCCL_HOME, then the CUDA folder, then the nvidia-nccl-cu13 wheel."""
    candidates = []
    if os.environ.get("NCCL_HOME"):
        candidates.append(os.environ["NCCL_HOME"])
    candidates.append(cuda["home"])
    candidates += [os.path.join(d, "nccl") for d in _nvidia_wheel_dirs()]
    header_only = None
    for home in candidates:
        inc = os.path.join(home, "include")
        if not os.path.isfile(os.path.join(inc, "nccl.h")):
            continue
        for d in ("lib", "lib64"):
            libdir = os.path.join(home, d)
            # The wheel ships only libnccl.so.2 (no libnccl.so), hence -l:libnccl.so.2.
            if os.path.exists(os.path.join(libdir, "libnccl.so.2")):
                return {"home": home, "include": inc, "libdir": os.path.realpath(libdir)}
        header_only = header_only or inc
    if header_only:
        return (f"nccl.h in {header_only} but no libnccl.so.2 next to it; "
                "set NCCL_HOME or pip install nvidia-nccl-cu13")
    return "nccl.h not found; set NCCL_HOME or pip install nvidia-nccl-cu13"


def find_cublas(cuda):
    """cuBLAS from the CUDA folder or the nvidia-cublas wheel (nvidia/cu13/{include,lib})."""
    candidates = [(cuda["include"], cuda["libdir"])]
    for d in _nvidia_wheel_dirs():
        for sub in ("cu13", "cublas"):
            candidates.append((os.path.join(d, sub, "include"), os.path.join(d, sub, "lib")))
    for inc, libdir in candidates:
        if not os.path.isfile(os.path.join(inc, "cublas_v2.h")):
            continue
        if os.path.exists(os.path.join(libdir, "libcublas.so.13")):
            return {"include": inc, "libdir": os.path.realpath(libdir)}
    return "cublas_v2.h + libcublas.so.13 not found; pip install nvidia-cublas"


def find_gloo():
    prefixes = [os.environ["GLOO_HOME"]] if os.environ.get("GLOO_HOME") else []
    prefixes += ["/usr", "/usr/local"]
    multiarch = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
    for prefix in prefixes:
        inc = os.path.join(prefix, "include")
        if not os.path.isfile(os.path.join(inc, "gloo", "allreduce.h")):
            continue
        for d in ("lib", f"lib/{multiarch}", "lib64"):
            libdir = os.path.join(prefix, d)
            if os.path.exists(os.path.join(libdir, "libgloo.so")):
                return {"include": inc, "libdir": libdir, "lib": "gloo"}
            # A `dpkg -x` of libgloo0 without the -dev symlink still links via the soname.
            if os.path.exists(os.path.join(libdir, "libgloo.so.0")):
                return {"include": inc, "libdir": libdir, "lib": ":libgloo.so.0"}
        return f"gloo headers in {inc} but no libgloo.so next to them"
    return "gloo/allreduce.h not found; apt-get install libgloo-dev or set GLOO_HOME"


# ------------------------------------------------------------------------------------------
# Build configuration from detection + environment.
# ------------------------------------------------------------------------------------------

def configure():
    """Returns (settings for the Extension, nvcc settings or None, summary line)."""
    import numpy

    debug = _env_flag("SHARDOPT_DEBUG") or False
    sanitize = os.environ.get("SHARDOPT_SANITIZE", "").strip()
    sanitizers = [s for s in sanitize.split(",") if s]
    for s in sanitizers:
        if s not in ("address", "undefined"):
            raise SetupError(f"SHARDOPT_SANITIZE={sanitize!r}: supported values are "
                             "'address', 'undefined' or 'address,undefined'")

    cfg = {
        "sources": _sources("*.c"),
        "include_dirs": [CSRC, numpy.get_include()],
        "define_macros": [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        "libraries": [],
        "library_dirs": [],
        "runtime_library_dirs": [],
        # -fno-math-errno: libm sqrt must vectorise (optim).  -ffp-contract=fast: -std=c11
        # turns gcc's a*b+c -> fma contraction off; only the target_clones'd kernels (built
        # for AVX2/AVX-512 as well) have FMA, and they need it (nvcc contracts by default).
        "extra_compile_args": ["-fno-strict-aliasing", "-fno-math-errno", "-ffp-contract=fast",
                               "-Wall"],
        "extra_link_args": [],
        "depends": _sources("*.h") + _sources("*.cuh") + _sources("*.hpp"),
    }
    if debug:
        # Later flags win over sysconfig's -O2/-O3; -UNDEBUG turns assert() back on.
        cfg["extra_compile_args"] += ["-O0", "-g", "-UNDEBUG"]
    else:
        cfg["extra_compile_args"] += ["-O3"]
    if sanitizers:
        san = ["-fsanitize=" + ",".join(sanitizers), "-fno-omit-frame-pointer"]
        cfg["extra_compile_args"] += san
        cfg["extra_link_args"] += san
    parts = []
    multiarch = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
    # Directories the compiler and linker search anyway; naming them with -I/-L would only
    # reorder the search (and put system headers ahead of our own).
    system_dirs = {"/usr/include", f"/usr/include/{multiarch}", "/usr/local/include",
                   "/usr/lib", f"/usr/lib/{multiarch}", "/lib", f"/lib/{multiarch}"}

    def add_dir(key, d):
        if d not in system_dirs and d not in cfg[key]:
            cfg[key].append(d)

    # --- CBLAS -------------------------------------------------------------------------
    blas = find_cblas()
    if isinstance(blas, dict):
        cfg["define_macros"].append(("SHARDOPT_WITH_CBLAS", "1"))
        add_dir("include_dirs", blas["include"])
        add_dir("library_dirs", blas["libdir"])
        if blas["libdir"] not in system_dirs:
            add_dir("runtime_library_dirs", blas["libdir"])
        cfg["libraries"].append(blas["lib"])
        parts.append(f"CBLAS=yes ({blas['lib']})")
    else:
        _note(f"no CBLAS: {blas}; CPU matmul uses the built-in loop")
        parts.append(f"CBLAS=no ({blas})")

    # --- CUDA (+ cuBLAS) (+ NCCL) ---------------------------------------------------------
    # The kernels build wherever nvcc is; NCCL and cuBLAS are optional on top of them, so a
    # CI machine with the toolkit but no NCCL still compiles every .cu file.
    want_cuda = _env_flag("SHARDOPT_CUDA")
    want_nccl = _env_flag("SHARDOPT_NCCL")
    nvcc_cfg = None
    cuda = "SHARDOPT_CUDA=0" if want_cuda is False else find_cuda()
    if want_cuda and not isinstance(cuda, dict):
        raise SetupError(f"SHARDOPT_CUDA=1 but the CUDA build is not possible: {cuda}")
    if isinstance(cuda, dict):
        archs = os.environ.get("SHARDOPT_CUDA_ARCHS", "80;90").replace(",", ";").split(";")
        archs = [a.strip() for a in archs if a.strip()]
        if not all(a.isdigit() for a in archs) or not archs:
            raise SetupError("SHARDOPT_CUDA_ARCHS must look like '80;90'")
        gencode = []
        for a in archs:
            gencode += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
        # PTX for the newest listed arch lets newer GPUs JIT-compile the kernels.
        top = max(archs, key=int)
        gencode += ["-gencode", f"arch=compute_{top},code=compute_{top}"]

        defines = [("SHARDOPT_WITH_CUDA", "1")]
        incs = [cuda["include"]]
        libs = []
        nccl = "SHARDOPT_NCCL=0" if want_nccl is False else find_nccl(cuda)
        if isinstance(nccl, dict):
            defines.append(("SHARDOPT_WITH_NCCL", "1"))
            incs.append(nccl["include"])
            libs.append(":libnccl.so.2")
            add_dir("library_dirs", nccl["libdir"])
            add_dir("runtime_library_dirs", nccl["libdir"])
            nccl_part = f"NCCL=yes ({nccl['home']})"
        else:
            if want_nccl:
                raise SetupError(f"SHARDOPT_NCCL=1 but NCCL is not usable: {nccl}")
            _note(f"no NCCL: {nccl}; the nccl backend will raise")
            nccl_part = f"NCCL=no ({nccl})"
        cublas = find_cublas(cuda)
        if isinstance(cublas, dict):
            defines.append(("SHARDOPT_WITH_CUBLAS", "1"))
            incs.append(cublas["include"])
            libs.append(":libcublas.so.13")
            add_dir("library_dirs", cublas["libdir"])
            add_dir("runtime_library_dirs", cublas["libdir"])
            cublas_part = "cuBLAS=yes"
        else:
            _note(f"no cuBLAS: {cublas}; CUDA matmul will raise")
            cublas_part = f"cuBLAS=no ({cublas})"
        # cudart is linked statically: the driver (libcuda) is the only CUDA library needed at
        # run time, and it is loaded on first use, so the module imports without one.
        cfg["libraries"] += libs + ["cudart_static", "rt", "pthread", "dl", "stdc++"]
        add_dir("library_dirs", cuda["libdir"])
        cfg["define_macros"] += defines
        for d in incs:
            add_dir("include_dirs", d)

        flags = ["-O0" if debug else "-O3", "-Xcompiler", "-fPIC", "-std=c++17",
                 "--expt-relaxed-constexpr"] + gencode
        if debug:
            flags += ["-g", "-lineinfo", "-UNDEBUG"]
        # ASan is not applied to nvcc's host code: CUDA's runtime and ASan's shadow memory
        # conflict (it needs protect_shadow_gap=0), and the host side of .cu files is
        # launch glue only.  The C code around it is sanitized.
        nvcc_cfg = {
            "nvcc": cuda["nvcc"],
            "sources": _sources("*.cu"),
            "flags": flags,
            "include_dirs": cfg["include_dirs"] + [sysconfig.get_paths()["include"]],
            "define_macros": list(cfg["define_macros"]),
        }
        parts.insert(0, f"CUDA=yes (nvcc {cuda['version']}, sm_{',sm_'.join(archs)})")
        parts.insert(1, nccl_part)
        parts.insert(2, cublas_part)
    else:
        nccl = cuda
        _note(f"CPU-only build: {cuda}")
        parts.insert(0, f"CUDA=no ({cuda})")
        parts.insert(1, "NCCL=no")
        parts.insert(2, "cuBLAS=no")
    # What the nccl backend says when it is missing (module.c exports it as _C._nccl_missing).
    if not isinstance(nccl, dict):
        cfg["define_macros"].append(("SHARDOPT_NCCL_MISSING", _c_string(nccl)))

    # --- Gloo -----------------------------------------------------------------------------
    want_gloo = _env_flag("SHARDOPT_GLOO")
    gloo = "SHARDOPT_GLOO=0" if want_gloo is False else find_gloo()
    if isinstance(gloo, dict):
        cfg["sources"] += _sources("*.cc")
        cfg["define_macros"].append(("SHARDOPT_WITH_GLOO", "1"))
        add_dir("include_dirs", gloo["include"])
        # gloo/common/memory.h, which Debian's libgloo-dev omits (csrc/distributed/gloo_io.cc).
        add_dir("include_dirs", os.path.join(CSRC, "distributed", "third_party"))
        add_dir("library_dirs", gloo["libdir"])
        add_dir("runtime_library_dirs", gloo["libdir"])
        cfg["libraries"] += [gloo["lib"], "stdc++"]
        parts.append("Gloo=yes")
    else:
        if want_gloo:
            raise SetupError(f"SHARDOPT_GLOO=1 but Gloo is not usable: {gloo}")
        _note(f"Gloo missing: {gloo}; the gloo backend is not built")
        parts.append(f"Gloo=no ({gloo})")

    mode = "debug" if debug else "release"
    if sanitizers:
        mode += "+" + "+".join(sanitizers)
    parts.append(f"mode={mode}")
    # Deduplicate libraries, keeping the order but stdc++ (asked for by CUDA and Gloo) last.
    libs = list(dict.fromkeys(cfg["libraries"]))
    if "stdc++" in libs:
        libs.remove("stdc++")
        libs.append("stdc++")
    cfg["libraries"] = libs
    return cfg, nvcc_cfg, f"{SUMMARY_PREFIX} " + " ".join(parts)


# ------------------------------------------------------------------------------------------
# Compilation helpers.
# ------------------------------------------------------------------------------------------

def _up_to_date(obj):
    """True when obj exists and is newer than everything its .d dependency file lists."""
    dep = obj + ".d"
    if not (os.path.exists(obj) and os.path.exists(dep)):
        return False
    with open(dep) as f:
        text = f.read().replace("\\\n", " ")
    # Make-rule format "target: dep dep ..."; paths with spaces are escaped as "\ ".
    _, _, deps = text.partition(": ")
    t = os.path.getmtime(obj)
    for d in re.split(r"(?<!\\)\s+", deps.strip()):
        if not d or d.endswith(":"):
            continue
        d = d.replace("\\ ", " ")
        if not os.path.exists(d) or os.path.getmtime(d) > t:
            return False
    return True


def _jobs():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


class BuildExt(build_ext):
    """build_ext that configures the extension from the machine, passes per-language
    standards (-std=c11 / -std=c++17), compiles in parallel and incrementally, and runs nvcc
    for the .cu files."""

    def run(self):
        cfg, self._nvcc, summary = configure()
        for ext in self.extensions:
            if ext.name != "shardopt._C":
                continue
            for key, value in cfg.items():
                setattr(ext, key, value)
        # One object folder per flag set, so normal/debug/ASan builds do not clobber each
        # other's objects.
        sig = repr((cfg, self._nvcc, sys.version, sysconfig.get_config_var("CFLAGS")))
        self._sig = hashlib.sha1(sig.encode()).hexdigest()[:10]
        self.build_temp = f"{self.build_temp}-{self._sig}"
        super().run()
        print(summary, flush=True)

    def build_extension(self, ext):
        ext_path = self.get_ext_fullpath(ext.name)
        # build_ext skips an extension whose .so is newer than its sources, even when that
        # .so was linked with other flags (e.g. the ASan one).  A stamp next to the build
        # folder says which flag set produced the .so in place; a mismatch forces a relink.
        key = hashlib.sha1(os.path.abspath(ext_path).encode()).hexdigest()[:10]
        stamp = os.path.join(os.path.dirname(self.build_temp) or ".", f"shardopt-so-{key}.cfg")
        old = open(stamp).read() if os.path.exists(stamp) else None
        if old != self._sig and os.path.exists(ext_path):
            os.remove(ext_path)
        ext.extra_objects = list(ext.extra_objects or [])
        if self._nvcc and self._nvcc["sources"]:
            ext.depends = list(ext.depends) + self._nvcc["sources"]
            ext.extra_objects += self._compile_cuda()
        self._patch_compiler()
        super().build_extension(ext)
        os.makedirs(os.path.dirname(stamp) or ".", exist_ok=True)
        with open(stamp, "w") as f:
            f.write(self._sig)

    # -- C / C++ ---------------------------------------------------------------------------

    def _patch_compiler(self):
        cc = self.compiler
        if getattr(cc, "_shardopt_patched", False):
            return
        if not (hasattr(cc, "_setup_compile") and hasattr(cc, "_get_cc_args")):
            # A distutils without these internals: keep its serial compile, still add -std.
            orig = cc._compile

            def _compile_std(obj, src, ext, cc_args, extra_postargs, pp_opts):
                std = "-std=c++17" if ext in (".cc", ".cpp", ".cxx") else "-std=c11"
                orig(obj, src, ext, cc_args, [std] + list(extra_postargs), pp_opts)
            cc._compile = _compile_std
            cc._shardopt_patched = True
            return
        cc._shardopt_patched = True
        orig_compile = cc._compile
        force = self.force

        def _compile(obj, src, ext, cc_args, extra_postargs, pp_opts):
            std = "-std=c++17" if ext in (".cc", ".cpp", ".cxx") else "-std=c11"
            # -MMD -MF writes the header dependencies used by _up_to_date next time.
            orig_compile(obj, src, ext, cc_args,
                         [std] + list(extra_postargs) + ["-MMD", "-MF", obj + ".d"], pp_opts)

        def compile(sources, output_dir=None, macros=None, include_dirs=None, debug=0,
                    extra_preargs=None, extra_postargs=None, depends=None):
            # Same steps as distutils' CCompiler.compile, but objects that are up to date are
            # skipped and the rest are compiled on a thread pool (gcc runs as a subprocess).
            macros, objects, extra_postargs, pp_opts, build = cc._setup_compile(
                output_dir, macros, include_dirs, sources, depends, extra_postargs)
            cc_args = cc._get_cc_args(pp_opts, debug, extra_preargs)
            todo = [o for o in objects if force or not _up_to_date(o)]

            def one(obj):
                src, ext = build[obj]
                _compile(obj, src, ext, cc_args, extra_postargs, pp_opts)

            with concurrent.futures.ThreadPoolExecutor(_jobs()) as pool:
                for fut in [pool.submit(one, o) for o in todo]:
                    fut.result()  # re-raises the first CompileError
            return objects

        cc._compile = _compile
        cc.compile = compile

    # -- CUDA ------------------------------------------------------------------------------

    def _compile_cuda(self):
        n = self._nvcc
        args = list(n["flags"])
        for d in n["include_dirs"]:
            args.append("-I" + d)
        for name, value in n["define_macros"]:
            args.append(f"-D{name}" if value is None else f"-D{name}={value}")
        objects = []
        todo = []
        for src in n["sources"]:
            obj = os.path.join(self.build_temp, os.path.splitext(src)[0] + ".cu.o")
            objects.append(obj)
            if self.force or not _up_to_date(obj):
                todo.append((src, obj))

        def one(item):
            src, obj = item
            os.makedirs(os.path.dirname(obj), exist_ok=True)
            cmd = [n["nvcc"], "-c", src, "-o", obj, "-MD", "-MF", obj + ".d"] + args
            print(" ".join(cmd), flush=True)
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise CompileError(f"nvcc failed on {src}:\n{r.stdout}{r.stderr}")
            if r.stderr.strip():
                print(r.stderr, end="", file=sys.stderr, flush=True)

        with concurrent.futures.ThreadPoolExecutor(min(len(todo), _jobs()) or 1) as pool:
            for fut in [pool.submit(one, t) for t in todo]:
                fut.result()
        return objects


setup(
    packages=find_packages(include=["shardopt", "shardopt.*"]),
    # Sources and flags are filled in by BuildExt.run from what the machine has.
    ext_modules=[Extension("shardopt._C", sources=_sources("*.c") or ["csrc/module.c"])],
    cmdclass={"build_ext": BuildExt},
)
