"""Mutation check of LSSKD's core: do the tests catch the method's own
mistakes?

Applies each named mutation of ``core_mutations.py`` (a detach removed, two
axes swapped, a weight not applied, a branch order reversed, ...) to a
copy of the repository, one at a time, runs the tests that cover the
mutated file there, and reports whether a test failed (the mutation is
killed) or every one passed (it survived). A survivor is either killed by
a new test or listed in ``HARMLESS`` with the reason it changes nothing;
the script exits with status 1 while any survivor is unexplained or any
mutation no longer matches the code (stale). The working tree is never
touched: the copy is made under a temporary directory, and the tests
import the package from it.

It takes about half a minute a mutation on one core (the tests' imports
dominate), so it is a tool to run after changing the core, not a CI step.

Example::

    python tools/misc/mutation_check.py
    python tools/misc/mutation_check.py --only 'KL direction swapped'
"""
import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core_mutations import HARMLESS, MUTATIONS  # beside this script

ROOT = Path(__file__).resolve().parents[2]
# The last full run's score, and the docs block written from it.
SCORE_FILE = ROOT / 'docs/results/mutation_check.json'
DOCS_PAGE = ROOT / 'docs/reliability.md'
MARKERS = ('<!-- mutation-check score: begin -->',
           '<!-- mutation-check score: end -->')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--only', nargs='+', metavar='NAME', default=None,
        help='apply only these mutations (their names as listed)')
    parser.add_argument('--list', action='store_true',
                        help='list the mutations and exit')
    parser.add_argument(
        '--mutmut', nargs='+', metavar='FILE', default=None,
        help='instead of the named mutations, run mutmut\'s syntactic sweep '
        '(mutmut >= 3.8, not a dependency) of these package files against '
        'the test files of --mutmut-tests')
    parser.add_argument(
        '--mutmut-tests', nargs='+', metavar='TEST', default=[],
        help='the test files the sweep runs (conftest.py comes with them)')
    parser.add_argument(
        '--update-docs', action='store_true',
        help='after a run of every mutation, write its score to '
        'docs/results/mutation_check.json and into docs/reliability.md')
    parser.add_argument(
        '--timeout', type=float, default=600,
        help='seconds the tests of one mutation may take; longer counts as '
        'killed (a mutation that hangs the tests is caught)')
    args = parser.parse_args(argv)
    if args.update_docs and args.only:
        parser.error('--update-docs records a run of every mutation; '
                     'leave out --only.')
    names = [m.name for m in MUTATIONS]
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:
        parser.error(f'no mutation named {unknown}; --list shows them.')
    return args


def copy_repository(destination: Path, name: str = 'repo') -> Path:
    """The tracked and untracked-but-not-ignored files, as the tests see
    them (``git ls-files``), copied to ``destination / name``."""
    files = subprocess.run(
        ['git', 'ls-files', '--cached', '--others', '--exclude-standard',
         '-z'], cwd=ROOT, capture_output=True, text=True,
        check=True).stdout.split('\0')
    copy = destination / name
    for path in filter(None, files):
        source = ROOT / path
        if source.is_file():
            target = copy / path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return copy


def run_tests(copy: Path, tests, timeout: float) -> tuple:
    """``(passed, seconds, last lines)`` of the tests, in ``copy``, with
    the package imported from it."""
    env = dict(os.environ, PYTHONPATH=str(copy), OMP_NUM_THREADS='1')
    start = time.perf_counter()
    try:
        result = subprocess.run(
            [sys.executable, '-m', 'pytest', '-x', '-q', '-n', '0', '-p',
             'no:cacheprovider', *tests], cwd=copy, env=env,
            capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, time.perf_counter() - start, 'timed out'
    lines = (result.stdout + result.stderr).strip().splitlines()
    return (result.returncode == 0, time.perf_counter() - start,
            lines[-1] if lines else '')


def check_import_location(copy: Path) -> None:
    """The tests must import the mutated copy, not the installed tree."""
    env = dict(os.environ, PYTHONPATH=str(copy))
    found = subprocess.run(
        [sys.executable, '-c', 'import mmlsskd; print(mmlsskd.__file__)'],
        cwd=copy, env=env, capture_output=True, text=True,
        check=True).stdout.strip()
    if not Path(found).resolve().is_relative_to(copy.resolve()):
        raise SystemExit(f'The tests in {copy} import mmlsskd from {found}, '
                         f'not from the copy: the check would test the '
                         f'unmutated code.')


def mutmut_sweep(files: list, tests: list) -> None:
    """mutmut's syntactic sweep (operators, constants, arguments flipped
    one at a time) of ``files``, against ``tests`` only, in a copy of the
    repository; prints its counts and every survivor's change."""
    if shutil.which('mutmut') is None:
        raise SystemExit('mutmut is not installed: pip install "mutmut>=3.8" '
                         '(a tool, not a dependency of the project).')
    with tempfile.TemporaryDirectory() as tmp:
        # mutmut finds the code to mutate by the folder's name.
        copy = copy_repository(Path(tmp), name='mmlsskd')
        for test in (copy / 'tests').rglob('test_*.py'):
            if str(test.relative_to(copy)) not in tests:
                test.unlink()
        others = sorted(
            str(p.relative_to(copy)) for p in (copy / 'mmlsskd').rglob('*.py')
            if str(p.relative_to(copy)) not in files)
        setup = (copy / 'setup.cfg').read_text().replace(
            'addopts = -n logical --dist loadscope', 'addopts =')
        setup += ('\n[mutmut]\ndo_not_mutate =\n' + ''.join(
            f'    {p}\n' for p in others) + 'also_copy =\n    configs/\n')
        (copy / 'setup.cfg').write_text(setup)
        env = dict(os.environ, OMP_NUM_THREADS='1')
        subprocess.run(['mutmut', 'run'], cwd=copy, env=env,
                       capture_output=True, text=True)
        results = subprocess.run(['mutmut', 'results', '--all', 'true'],
                                 cwd=copy, env=env, capture_output=True,
                                 text=True).stdout
        outcomes = [line.rsplit(': ', 1) for line in results.splitlines()
                    if ': ' in line]
        counts = {}
        for _, outcome in outcomes:
            counts[outcome] = counts.get(outcome, 0) + 1
        print(f'mutmut: {len(outcomes)} mutants of {", ".join(files)}: ' +
              ', '.join(f'{n} {o}' for o, n in sorted(counts.items())))
        for name, outcome in outcomes:
            if outcome == 'survived':
                diff = subprocess.run(['mutmut', 'show', name.strip()],
                                      cwd=copy, env=env,
                                      capture_output=True, text=True).stdout
                changed = [line for line in diff.splitlines()
                           if line[:1] in '-+' and line[:3] not in
                           ('---', '+++')]
                print(f'survived: {name.strip()}: ' + ' | '.join(changed))


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.mutmut:
        mutmut_sweep(args.mutmut, args.mutmut_tests)
        return
    mutations = [m for m in MUTATIONS
                 if args.only is None or m.name in args.only]
    if args.list:
        for m in mutations:
            print(f'{m.name}  ({m.path})')
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        copy = copy_repository(Path(tmp))
        check_import_location(copy)
        # The unmutated tests must pass, or every mutation looks killed.
        for tests in sorted({m.tests for m in mutations}):
            passed, _, last = run_tests(copy, tests, args.timeout)
            if not passed:
                raise SystemExit(f'The unmutated code fails {tests}: {last}')
        for i, m in enumerate(mutations, 1):
            path = copy / m.path
            original = path.read_text()
            count = original.count(m.old)
            if count != 1:
                outcome, seconds = f'stale ({count} matches)', 0.0
            else:
                path.write_text(original.replace(m.old, m.new))
                try:
                    passed, seconds, last = run_tests(copy, m.tests,
                                                      args.timeout)
                finally:
                    path.write_text(original)
                outcome = 'survived' if passed else 'killed'
            results.append((m, outcome))
            print(f'[{i}/{len(mutations)}] {outcome:9} {seconds:5.0f} s  '
                  f'{m.name}  ({m.path})', flush=True)
    killed = sum(outcome == 'killed' for _, outcome in results)
    survivors = [m for m, outcome in results if outcome == 'survived']
    stale = [m for m, outcome in results if outcome.startswith('stale')]
    print(f'\nKilled {killed} of {len(results)} mutations.')
    for m in survivors:
        reason = HARMLESS.get(m.name)
        print(f'Survived: {m.name} ({m.path}): ' +
              (f'harmless: {reason}' if reason else 'NOT EXPLAINED: add a '
               'test that kills it, or its reason to HARMLESS.'))
    for m in stale:
        print(f'Stale: {m.name}: its text is no longer exactly once in '
              f'{m.path}; update core_mutations.py.')
    if args.update_docs:
        score = dict(
            date=datetime.date.today().isoformat(), mutations=len(results),
            killed=killed, survived={m.name: HARMLESS.get(m.name)
                                     for m in survivors},
            stale=[m.name for m in stale],
            files=sorted({m.path for m, _ in results}))
        SCORE_FILE.write_text(json.dumps(score, indent=1) + '\n')
        write_score_block(score)
    if stale or any(m.name not in HARMLESS for m in survivors):
        raise SystemExit(1)


def score_block(score: dict) -> list:
    """Markdown lines of a run's score."""
    lines = [
        f'Last run of every mutation ({score["date"]}, '
        f'`{SCORE_FILE.relative_to(ROOT)}`): **{score["killed"]} of '
        f'{score["mutations"]} killed**, in {len(score["files"])} files.'
    ]
    for name, reason in score['survived'].items():
        lines.append(f'- Survived: {name}: ' +
                     (f'harmless: {reason}' if reason else 'unexplained.'))
    for name in score['stale']:
        lines.append(f'- Stale: {name}.')
    return lines


def write_score_block(score: dict) -> None:
    """Replace the score block of docs/reliability.md."""
    text = DOCS_PAGE.read_text()
    begin, end = MARKERS
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    DOCS_PAGE.write_text(head + '\n'.join([begin, *score_block(score), end])
                         + tail)


if __name__ == '__main__':
    main()
