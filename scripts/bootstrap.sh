# scripts/bootstrap.sh — set-up shared by run_demo.sh, run_tests.sh and the Makefile.
#
# Source it (bash): `source scripts/bootstrap.sh || exit 1`.  It is idempotent, prints
# nothing but the build summary when everything is already present, and never needs the
# network in that case.  What it does:
#   1. picks the interpreter by capability ($PYTHON, else python3, else /usr/bin/python3:
#      the first with Python.h and setuptools; one that already has numpy and pytest wins),
#   2. pip-installs numpy / pytest if that interpreter lacks them,
#   3. apt-installs libopenblas-dev and libgloo-dev if their headers are missing (only as
#      root and only where apt-get exists; otherwise the build reports them missing),
#   4. builds shardopt._C in place (`setup.py build_ext --inplace`, quiet unless it fails).
# Afterwards $PY is the interpreter, $SHARDOPT_ROOT the repository, and PYTHONPATH starts
# with the repository so that `import shardopt` works from any folder (and in child ranks).
# Set SHARDOPT_SKIP_BUILD=1 to skip step 4 (the Makefile's asan target builds itself).

SHARDOPT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SHARDOPT_ROOT

_so_say() { echo "bootstrap: $*" >&2; }

# _so_probe PY: prints which of python.h setuptools numpy pytest pip and "managed" (PEP 668
# externally managed, outside a venv) hold for PY, space separated; fails if PY won't run.
_so_probe() {
    "$1" - <<'EOF' 2>/dev/null
import importlib.util as u, os, sys, sysconfig
have = []
if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")):
    have.append("python.h")
for m in ("setuptools", "numpy", "pytest", "pip"):
    if u.find_spec(m) is not None:
        have.append(m)
if sys.prefix == sys.base_prefix and os.path.exists(
        os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED")):
    have.append("managed")
print(" ".join(have))
EOF
}

_so_has() { case " $1 " in *" $2 "*) return 0 ;; *) return 1 ;; esac; }

_SO_APT_UPDATED=""
_so_apt_install() {  # apt-get install PKG... when possible; returns 1 if it could not
    command -v apt-get >/dev/null 2>&1 || return 1
    [ "$(id -u)" = 0 ] || { _so_say "not root: cannot apt-get install $*"; return 1; }
    if [ -z "$_SO_APT_UPDATED" ]; then
        apt-get update -qq >/dev/null 2>&1 || { _so_say "apt-get update failed (offline?)"; return 1; }
        _SO_APT_UPDATED=1
    fi
    _so_say "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
        || { _so_say "apt-get install $* failed"; return 1; }
}

_so_pick_python() {
    local c info candidates first_ok="" first_unmanaged=""
    if [ -n "${PYTHON:-}" ]; then
        candidates=("$PYTHON")   # an explicit choice is honoured or refused, not replaced
    else
        candidates=(python3 /usr/bin/python3)
    fi
    for c in "${candidates[@]}"; do
        command -v "$c" >/dev/null 2>&1 || continue
        info="$(_so_probe "$c")" || continue
        _so_has "$info" python.h && _so_has "$info" setuptools || continue
        if _so_has "$info" numpy && _so_has "$info" pytest; then
            PY="$c"; return 0
        fi
        [ -z "$first_ok" ] && first_ok="$c"
        if [ -z "$first_unmanaged" ] && ! _so_has "$info" managed; then first_unmanaged="$c"; fi
    done
    # Nobody has everything: prefer an interpreter pip may install into without
    # --break-system-packages.
    PY="${first_unmanaged:-$first_ok}"
    if [ -z "$PY" ] && [ -z "${PYTHON:-}" ]; then
        # No interpreter with headers and setuptools at all: Debian's, via apt.
        _so_apt_install python3-dev python3-setuptools python3-pip && PY=/usr/bin/python3
    fi
    if [ -z "$PY" ]; then
        _so_say "no usable Python: need Python.h and setuptools (tried: ${candidates[*]})"
        return 1
    fi
}

_so_python_deps() {
    local info missing=() extra=()
    info="$(_so_probe "$PY")"
    _so_has "$info" numpy || missing+=(numpy)
    _so_has "$info" pytest || missing+=(pytest)
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! _so_has "$info" pip; then
        if [ "$PY" = /usr/bin/python3 ]; then _so_apt_install python3-pip || true; fi
        _so_has "$(_so_probe "$PY")" pip || { _so_say "$PY lacks ${missing[*]} and pip"; return 1; }
    fi
    # Debian's interpreter refuses pip installs outside a venv (PEP 668) unless told.
    _so_has "$info" managed && extra+=(--break-system-packages)
    _so_say "$PY -m pip install ${missing[*]}"
    local log="$SHARDOPT_ROOT/build/bootstrap-pip.log"
    mkdir -p "$SHARDOPT_ROOT/build"
    if ! "$PY" -m pip install -q --disable-pip-version-check "${extra[@]}" "${missing[@]}" \
            >"$log" 2>&1; then
        cat "$log" >&2
        _so_say "pip install ${missing[*]} failed (offline? install them another way)"
        return 1
    fi
}

_so_system_libs() {
    local pkgs=() d have_blas=""
    for d in /usr/include/x86_64-linux-gnu /usr/include /usr/include/openblas \
             ${OPENBLAS_HOME:+"$OPENBLAS_HOME/include"}; do
        [ -f "$d/cblas.h" ] && have_blas=1
    done
    [ -n "$have_blas" ] || pkgs+=(libopenblas-dev)
    if [ "${SHARDOPT_GLOO:-}" != 0 ] && [ ! -f /usr/include/gloo/allreduce.h ] \
        && { [ -z "${GLOO_HOME:-}" ] || [ ! -f "$GLOO_HOME/include/gloo/allreduce.h" ]; }; then
        pkgs+=(libgloo-dev)
    fi
    [ ${#pkgs[@]} -eq 0 ] && return 0
    # Without apt (the GPU machine) carry on: the build says what it left out.
    command -v apt-get >/dev/null 2>&1 || return 0
    _so_apt_install "${pkgs[@]}" || _so_say "continuing without ${pkgs[*]}"
    return 0
}

_so_build() {
    local log="$SHARDOPT_ROOT/build/bootstrap-build.log"
    mkdir -p "$SHARDOPT_ROOT/build"
    if ! (cd "$SHARDOPT_ROOT" && "$PY" setup.py build_ext --inplace) >"$log" 2>&1; then
        cat "$log" >&2
        _so_say "build failed (log: $log)"
        return 1
    fi
    grep '^shardopt build:' "$log" >&2 || true
}

_so_bootstrap() {
    _so_pick_python || return 1
    # The real executable, not a pyenv shim: cheaper to start, and it is what child
    # processes and LD_PRELOAD'ed runs (make asan) should see.
    PY="$("$PY" -c 'import sys; print(sys.executable or "")')" && [ -n "$PY" ] || return 1
    _so_python_deps || return 1
    _so_system_libs || return 1
    export PY
    case ":${PYTHONPATH:-}:" in
        *":$SHARDOPT_ROOT:"*) ;;
        *) export PYTHONPATH="$SHARDOPT_ROOT${PYTHONPATH:+:$PYTHONPATH}" ;;
    esac
    [ "${SHARDOPT_SKIP_BUILD:-0}" = 1 ] || _so_build || return 1
}

_so_bootstrap
