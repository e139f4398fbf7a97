#!/usr/bin/env bash
# Prepare the two git-ignored folders that travel to the GPU machine (the device tool's `carry`), run here:
#
#   benchmarks/device_prep.sh [tests|piano]     .whl/ and .devdata/ from ../shared, plus the project's extra wheels
#
# What travels must fit 64 MiB together with the working tree, so .devdata/ holds what the call needs: "tests"
# (the default, for gpu_test.sh) the verified datasets without the SoundFont; "piano" (for piano_gpu_call.sh) the
# SoundFont and the MIDI archive it renders, without the six registered piano FLACs (17 MB) that the run does not
# read.
#
# The GPU machine has Python 3.12, torch and no network or package index. .whl/ is a copy of
# shared/device-wheels (papermill, jupytext, soundfile, hyperopt, ...) plus the wheels this project added since:
# mido (MIDI files, `sequnet generate` and the music chapters), tinysoundfont (rendering piano audio from MIDI
# there) and pytest-xdist with execnet (gpu_test.sh spreads the suite over 6 processes), downloaded for
# cp312/manylinux. .devdata/ is a copy of shared/data (the verified datasets) plus the baked
# piano SoundFont in the mirror's layout (`python -m sequnet data soundfont` builds or finds it, 12.7 MB; building
# downloads the 330 MB Debian package once). Together they must stay under the 64 MiB a call carries; the script
# prints their sizes.
set -euo pipefail
shared=${SHARED:-../shared}
extra=("mido==1.3.3" "tinysoundfont==0.3.7" "pytest-xdist==3.8.0" "execnet==2.1.2")
# the variant is checked before anything is removed: a mistyped one must not leave the machine without its carry
case ${1:-tests} in tests|piano) ;; *) echo "device_prep: give tests or piano, not $1" >&2; exit 2 ;; esac
[ -d "$shared/device-wheels" ] && [ -d "$shared/data" ] || { echo "device_prep: no $shared/device-wheels or $shared/data" >&2; exit 2; }
rm -rf .whl .devdata
cp -r "$shared/device-wheels" .whl && cp -r "$shared/data" .devdata
chmod -R u+w .whl .devdata
python=${PYTHON:-.venv/bin/python}
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux2014_x86_64 --platform any -d .whl "${extra[@]}"
# The notebook and JupyterLab front-end assets of ipywidgets (2.4 MB): nothing on the machine imports them (papermill
# runs kernels, no front end), and without them the tests' carry fits again now that the published audio has grown
# the tree (2026-12-04: 65.3 MiB with them). debugpy (5.4 MB) only serves a debugger's front end: ipykernel runs
# without it (a papermill run with it uninstalled, 2026-12-05), and the device tool refused 63.7 MiB with it.
# jedi and parso (5 MB) serve IPython's tab completion only, which imports jedi inside a try (papermill ran a kernel
# with both blocked, 2026-12-07), and the committed logs had grown the tests' carry past 64 MiB by then.
rm -f .whl/widgetsnbextension-*.whl .whl/jupyterlab_widgets-*.whl .whl/debugpy-*.whl .whl/jedi-*.whl .whl/parso-*.whl
case ${1:-tests} in
    tests) ;;
    piano) font=$("$python" -m sequnet data soundfont)
           rm -rf .devdata/piano/rendered
           mkdir -p .devdata/soundfont && cp "$font" .devdata/soundfont/ ;;
esac
tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- | tail -1 | cut -f1)
du -sh .whl .devdata
total=$(( tree + $(du -scb .whl .devdata | tail -1 | cut -f1) ))
echo "with the working tree: $((total / 1048576)) MiB of the 64 MiB a call carries"
[ $total -le $((64 * 1048576)) ] || { echo "device_prep: over 64 MiB" >&2; exit 1; }
