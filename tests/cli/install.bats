#!/usr/bin/env bats
# Installing to a prefix: the installed programs, their default model, man
# pages and bash completion work from another folder with no repository or
# build tree around; C++ users find libedan with find_package and pkg-config.
load helpers

setup_file() {
  # One install for the whole file (the build tree is EDAN_BIN's parent).
  export PREFIX="$BATS_FILE_TMPDIR/prefix"
  cmake --install "$EDAN_BIN/.." --prefix "$PREFIX" > "$BATS_FILE_TMPDIR/install.log"
}

# A folder far from the repository and the build tree, with PATH holding
# the installed programs only (the suite's PATH has build/bin first).
elsewhere() {
  mkdir -p "$TMP/elsewhere" && cd "$TMP/elsewhere"
  PATH="$PREFIX/bin:/usr/bin:/bin"
}

@test "the installed programs run from another folder, with a relative RUNPATH" {
  elsewhere
  for p in "$PREFIX"/bin/edan-*; do
    run "$p" --version
    [ "$status" -eq 0 ] || { echo "$p: $output"; return 1; }
    readelf -d "$p" | grep -E 'RUNPATH|RPATH' | grep -q "\$ORIGIN/../lib" ||
      { echo "$p: $(readelf -d "$p" | grep -E 'RUNPATH|RPATH')"; return 1; }
  done
  # Nothing points back into the build tree.
  ! readelf -d "$PREFIX"/bin/edan-predict | grep -F "$(cd "$EDAN_BIN/.." && pwd)"
}

@test "the installed default model is found next to the programs, and only there" {
  elsewhere
  printf 'P5\n48 48\n255\n' > face.pgm && head -c 2304 /dev/urandom >> face.pgm
  run edan-predict -q face.pgm
  [ "$status" -eq 0 ]
  [[ "$output" == *'"pred":{"label":'* ]]
  # Without it: an error naming the place it looked, no fallback to any
  # build tree's models/.
  mv "$PREFIX/share/edan/default.edan" "$TMP/kept.edan"
  run --separate-stderr edan-predict face.pgm
  mv "$TMP/kept.edan" "$PREFIX/share/edan/default.edan"
  [ "$status" -eq 3 ]
  [[ "$stderr" == *"no default model at $PREFIX/share/edan/default.edan"* ]]
}

@test "the installed BlazeFace model (the default detector) is found next to the programs, with its licence" {
  require_data 300w-subset
  elsewhere
  [ -f "$PREFIX/share/edan/blazeface/LICENSE" ]
  run edan-crop --out-dir C -q "$EDAN_DATA/300w-subset/helen/testset/296814969_3.jpg"
  [ "$status" -eq 0 ]
  [[ "$output" == *'"keypoints":[['* ]]
  # Without it: exit 3, naming the file and the fix.
  f=face_detection_back_256x256_barracuda.onnx
  mv "$PREFIX/share/edan/blazeface/$f" "$TMP/kept.onnx"
  run --separate-stderr edan-crop --out-dir C "$EDAN_DATA/300w-subset/helen/testset/296814969_3.jpg"
  mv "$TMP/kept.onnx" "$PREFIX/share/edan/blazeface/$f"
  [ "$status" -eq 3 ]
  [[ "$stderr" == *"$PREFIX/share/edan/blazeface/$f: BlazeFace model not found (run \`make deps\`"* ]]
}

@test "the man pages and the bash completion are installed and work" {
  elsewhere
  for p in "$PREFIX"/bin/edan-*; do
    p=$(basename "$p")
    [ -f "$PREFIX/share/man/man1/$p.1" ] || { echo "no man page for $p"; return 1; }
    [ -f "$PREFIX/share/bash-completion/completions/$p" ] || { echo "no completion for $p"; return 1; }
  done
  [ -f "$PREFIX/share/man/man7/edan.7" ]
  command -v man > /dev/null && MANPATH="$PREFIX/share/man" man -w edan-predict | grep -q "$PREFIX"
  # Complete "--mo" and a --model argument.
  run bash -c 'source "$1/share/bash-completion/completions/edan-predict"
    COMP_WORDS=(edan-predict --mo); COMP_CWORD=1; _edan_predict; echo "${COMPREPLY[*]}"
    touch model.edan; COMP_WORDS=(edan-predict --model mod); COMP_CWORD=2; _edan_predict
    echo "${COMPREPLY[*]}"' _ "$PREFIX"
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = "--model" ]
  [ "${lines[1]}" = "model.edan" ]
}

@test "every option of --help is in the program's completion" {
  for p in "$PREFIX"/bin/edan-*; do
    c="$PREFIX/share/bash-completion/completions/$(basename "$p")"
    for opt in $("$p" --help | grep -oE '^  (-[A-Za-z0-9], )?--[a-z0-9-]+' | grep -oE -- '--[a-z0-9-]+'); do
      grep -qE -- "[ \"]$opt[ \"]" "$c" || { echo "$c: $opt missing"; return 1; }
    done
  done
}

@test "a C++ program finds libedan with find_package(edan) and with pkg-config" {
  elsewhere
  mkdir -p consumer
  cat > consumer/main.cpp <<'EOF'
#include <edan/labels.hpp>
#include <iostream>
int main() { std::cout << *edan::canonical_label("HA") << "\n"; }
EOF
  cat > consumer/CMakeLists.txt <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(consumer CXX)
set(CMAKE_CXX_STANDARD 17)
find_package(edan REQUIRED)
add_executable(consumer main.cpp)
target_link_libraries(consumer PRIVATE edan::edan)
EOF
  cmake -S consumer -B consumer/build -DCMAKE_PREFIX_PATH="$PREFIX" > cmake.log 2>&1 ||
    { cat cmake.log; return 1; }
  cmake --build consumer/build > build.log 2>&1 || { cat build.log; return 1; }
  # Under make asan the installed libedan is instrumented: a plain program
  # loads the sanitizers' runtimes first to use it.
  local preload=""
  [ -z "${ASAN_OPTIONS:-}" ] ||
    preload="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
  run env ${preload:+LD_PRELOAD=$preload} consumer/build/consumer
  [ "$status" -eq 0 ] || { echo "$output"; return 1; }
  [ "$output" = "happy" ]
  # pkg-config, relocatable (the .pc file names its prefix relative to itself).
  run env PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" pkg-config --cflags --libs edan
  [ "$status" -eq 0 ]
  [[ "$output" == *"-ledan"* ]]
  g++ -std=c++17 consumer/main.cpp -o pc-consumer \
    $(PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" pkg-config --cflags --libs edan) \
    -Wl,-rpath,"$PREFIX/lib"
  [ "$(env ${preload:+LD_PRELOAD=$preload} ./pc-consumer)" = "happy" ]
}
