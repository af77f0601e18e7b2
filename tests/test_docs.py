"""The README and the docs hold together: every relative link resolves,
and the docs cover what the README points to."""
import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]
LINK = re.compile(r'\]\(([^)#\s]+)(?:#[^)]*)?\)')


def test_every_relative_link_resolves():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if '://' in target or target.startswith('mailto:'):
                continue
            if not (page.parent / target).exists():
                broken.append(f'{page.relative_to(ROOT)} -> {target}')
    assert not broken, broken


def test_the_readme_is_short_and_links_every_docs_page():
    readme = (ROOT / 'README.md').read_text()
    assert len(readme) < 8000
    linked = set(LINK.findall(readme))
    for page in PAGES[1:]:
        assert f'docs/{page.name}' in linked, page.name


def documented_commands():
    """(page, script, arguments) of every ``python tools/...`` line in the
    bash blocks of the README and the docs."""
    for page in PAGES:
        for block in re.findall(r'```bash\n(.*?)```', page.read_text(),
                                re.S):
            for line in block.replace('\\\n', ' ').splitlines():
                words = line.split('#')[0].split()
                if len(words) > 1 and words[0] == 'python' and \
                        words[1].startswith('tools/'):
                    yield page.name, words[1], words[2:]


def test_every_documented_command_names_real_files_and_flags(capsys):
    """Each documented tool exists, every config or tool path it is given
    exists, and it accepts every flag it is shown with."""
    commands = list(documented_commands())
    assert len(commands) >= 8
    helps = {}
    for page, script, arguments in commands:
        assert (ROOT / script).is_file(), (page, script)
        for word in arguments:
            if word.startswith(('configs/', 'tools/')):
                assert (ROOT / word).exists(), (page, word)
        if script not in helps:
            spec = importlib.util.spec_from_file_location(
                Path(script).stem, ROOT / script)
            module = importlib.util.module_from_spec(spec)
            sys.path.insert(0, str((ROOT / script).parent))
            spec.loader.exec_module(module)
            argv, sys.argv = sys.argv, [script, '--help']
            try:
                with pytest.raises(SystemExit):
                    module.parse_args()
            finally:
                sys.argv = argv
                sys.path.pop(0)
            helps[script] = capsys.readouterr().out
        for word in arguments:
            if word.startswith('--'):
                flag = word.split('=')[0]
                assert re.search(re.escape(flag) + r'\b', helps[script]), (
                    page, script, flag)


def test_the_mutation_score_in_the_docs_is_the_recorded_one():
    """docs/reliability.md shows the score file of the last full run of
    tools/misc/mutation_check.py, which writes both (--update-docs)."""
    import json
    sys.path.insert(0, str(ROOT / 'tools/misc'))
    try:
        from mutation_check import MARKERS, SCORE_FILE, score_block
    finally:
        sys.path.pop(0)
    score = json.loads(SCORE_FILE.read_text())
    block = '\n'.join([MARKERS[0], *score_block(score), MARKERS[1]])
    assert block in (ROOT / 'docs/reliability.md').read_text()
    # Every survivor of the recorded run is explained.
    assert all(score['survived'].values()) and not score['stale']


def config_patterns(text: str) -> list:
    """The config paths docs/configs.md names in backticks, as regexes:
    ``{student}`` any student, ``{a,b}`` either, ``...`` the rest."""
    patterns = []
    for path in re.findall(r'`(configs/[^`]+)`', text):
        regex = ''
        for part in re.split(r'(\{[^}]*\}|\.\.\.)', path):
            if part == '...':
                regex += '.*'
            elif part.startswith('{') and ',' in part:
                regex += '(' + '|'.join(
                    re.escape(p) for p in part[1:-1].split(',')) + ')'
            elif part.startswith('{'):
                regex += '[^/]+'
            else:
                regex += re.escape(part)
        patterns.append(re.compile(regex + '$'))
    return patterns


def test_configs_page_lists_every_shipped_config():
    patterns = config_patterns((ROOT / 'docs/configs.md').read_text())
    shipped = sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / 'configs').rglob('*.py')
        if '_base_' not in p.parts)
    unlisted = [c for c in shipped
                if not any(p.match(c) for p in patterns)]
    assert not unlisted


def test_the_readme_states_no_measured_figure_by_hand():
    """Every measured figure in the README is in a generated block (the
    table at a glance, written from the result files); outside it and the
    code blocks, decimals are identifiers only."""
    text = (ROOT / 'README.md').read_text()
    text = re.sub(r'<!-- ([\w -]+): begin -->.*?<!-- \1: end -->', '', text,
                  flags=re.S)
    text = re.sub(r'```.*?```', '', text, flags=re.S)
    decimals = set(re.findall(r'[-+]?\d+\.\d+', text))
    assert decimals <= {'2506.07055', '3.11', '-2.0'}, decimals
