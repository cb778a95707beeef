#!/usr/bin/env bash
# test_install.sh — installs the build into a scratch prefix, then builds and runs an
# out-of-tree consumer twice: with CMake's find_package(zoff) (shared and static targets) and
# with pkg-config. Checks that only the public API is exported from libzoff.so.
# Usage: test_install.sh BUILD_DIR SOURCE_DIR SCRATCH_DIR
set -euo pipefail
build=$1 src=$2 scratch=$3
rm -rf "$scratch" && mkdir -p "$scratch"
prefix=$scratch/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null

libdir=$(dirname "$(find "$prefix" -name 'libzoff.so' | head -n1)")
[ -f "$prefix/include/zoff.h" ] || { echo "zoff.h not installed"; exit 1; }
[ -f "$libdir/libzoff.a" ] || { echo "libzoff.a not installed"; exit 1; }

# Exported symbols: all start with zoff_ (public API), none with zoff__ or a module prefix.
bad=$(nm -D --defined-only "$libdir/libzoff.so" | awk '{print $3}' | grep -v '^zoff_' |
      grep -v -E '^(_init|_fini|_edata|_end|__bss_start)$' || true)
internal=$(nm -D --defined-only "$libdir/libzoff.so" | awk '{print $3}' | grep '^zoff__' || true)
if [ -n "$bad$internal" ]; then
  echo "unexpected exported symbols:"; echo "$bad$internal" | head -20; exit 1
fi

cmake -S "$src/examples/consumer" -B "$scratch/cbuild" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$scratch/cbuild" >/dev/null
LD_LIBRARY_PATH="$libdir" "$scratch/cbuild/consumer"
"$scratch/cbuild/consumer_static"

export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -o "$scratch/consumer_pc" "$src/examples/consumer/main.c" $(pkg-config --cflags --libs zoff)
LD_LIBRARY_PATH="$libdir" "$scratch/consumer_pc"
echo "install test OK"
