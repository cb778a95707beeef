#!/usr/bin/env bash
# test_install.sh — installs the build into a scratch prefix, then builds and runs out-of-tree
# consumers that really open a runtime (examples/consumer/main.c) and run the whole step loop
# (examples/c/step_loop.c): with CMake's find_package(zoff) (zoff::zoff shared and
# zoff::zoff_static), with find_package and CUDAToolkit hidden (a consumer without CUDA), and with
# pkg-config (shared and --static). Checks that only the public API is exported from libzoff.so,
# that zoffTargets.cmake names no library by this machine's path, and that every docs page
# zoff.h names is installed.
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
# The exported targets name libraries, not this machine's distribution paths.
if grep -E '"[^"]*/usr/lib[^"]*\.(so|a)' "$libdir/cmake/zoff/zoffTargets.cmake"; then
  echo "zoffTargets.cmake hard-codes a library path"; exit 1
fi
# The header points only at installed files.
for page in $(grep -o 'docs/[a-z_]*\.md' "$prefix/include/zoff.h" | sort -u); do
  [ -f "$prefix/share/doc/zoff/${page#docs/}" ] || { echo "zoff.h names $page: not installed"; exit 1; }
done

run_all() { # dir
  (cd "$1" && LD_LIBRARY_PATH="$libdir" ./consumer && ./consumer_static &&
   LD_LIBRARY_PATH="$libdir" ./step_loop 20 ckpt_shared >/dev/null &&
   ./step_loop_static 20 ckpt_static >/dev/null)
}
cmake -S "$src/examples/consumer" -B "$scratch/cbuild" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$scratch/cbuild" >/dev/null
run_all "$scratch/cbuild"
# A consumer without a CUDA toolkit (the library may have been built with one).
cmake -S "$src/examples/consumer" -B "$scratch/cbuild_nocuda" -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON >/dev/null
cmake --build "$scratch/cbuild_nocuda" >/dev/null
run_all "$scratch/cbuild_nocuda"

export PKG_CONFIG_PATH="$libdir/pkgconfig"
mkdir -p "$scratch/pc"
# static: libzoff.a itself, then everything `pkg-config --static` lists besides -lzoff
static_libs=$(pkg-config --static --libs zoff | sed 's/-lzoff\b//')
# shellcheck disable=SC2046
cc -o "$scratch/pc/consumer" "$src/examples/consumer/main.c" $(pkg-config --cflags --libs zoff)
# shellcheck disable=SC2046,SC2086
cc -o "$scratch/pc/consumer_static" "$src/examples/consumer/main.c" $(pkg-config --cflags zoff) \
   "$libdir/libzoff.a" $static_libs
# shellcheck disable=SC2046
cc -o "$scratch/pc/step_loop" "$src/examples/c/step_loop.c" $(pkg-config --cflags --libs zoff) -lm
# shellcheck disable=SC2046,SC2086
cc -o "$scratch/pc/step_loop_static" "$src/examples/c/step_loop.c" $(pkg-config --cflags zoff) \
   "$libdir/libzoff.a" $static_libs -lm
run_all "$scratch/pc"
echo "install test OK"
