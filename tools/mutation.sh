#!/usr/bin/env bash
# Mutation testing of superres's core, one module at a time (see TESTING.md).
#
#   tools/mutation.sh imresize              every mutant of superres/quality/imresize.py
#   tools/mutation.sh imresize --survivors  only those that survived the last run (after a new test)
#   tools/mutation.sh all                   every mutant not yet checked, all modules (resumable: stop it with
#                                           Ctrl-C, run it again; rm -rf mutants/ to start afresh)
#   tools/mutation.sh --report              killed / total per module, and the survivors, from the last runs
#
# Modules: imresize metrics niqe tiling stripes winograd detect weights. mutmut ([tool.mutmut] in pyproject.toml)
# copies the tree into mutants/ and runs, for each mutant, the fast tests (not marked slow) that cover the
# mutated function. Nice'd and on MUTATION_JOBS workers (default 2): the machine may be shared.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A MODULES=(
    [imresize]=superres.quality.imresize
    [metrics]=superres.quality.metrics
    [niqe]=superres.quality.niqe
    [tiling]=superres.engine.tiling
    [stripes]=superres.engine.stripes
    [winograd]=superres.engine.winograd
    [detect]=superres.models.detect
    [weights]=superres.models.weights
)

if [[ $# -lt 1 || ( $1 != --report && $1 != all && -z ${MODULES[$1]:-} ) ]]; then
    modules="${!MODULES[*]}"
    echo "usage: tools/mutation.sh {${modules// /|}} [--survivors] | all | --report" >&2
    exit 2
fi
if [[ $1 == --report ]]; then
    exec python tools/mutation_report.py
fi

# the tests run from the copy in mutants/, one folder deeper than the real data beside the repository
export SUPERRES_SHARED="${SUPERRES_SHARED:-$(cd .. && pwd)/shared}"
# one thread per worker: the workers are the parallelism
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

if [[ $1 == all ]]; then
    nice -n 10 mutmut run --max-children "${MUTATION_JOBS:-2}"
    exec python tools/mutation_report.py
fi
module=${MODULES[$1]}
if [[ ${2:-} == --survivors ]]; then
    mapfile -t names < <(python tools/mutation_report.py --survivors "$module")
    if [[ ${#names[@]} -eq 0 ]]; then
        echo "no survivors of $module to rerun"
        exit 0
    fi
else
    names=("$module.*")
fi
nice -n 10 mutmut run --max-children "${MUTATION_JOBS:-2}" "${names[@]}"
python tools/mutation_report.py "$module"
