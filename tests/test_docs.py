"""The README and the docs hold together: every relative link resolves,
and the docs cover what the README points to."""
import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]
# The model-zoo pages, mmpretrain's config READMEs.
ZOO_PAGES = sorted((ROOT / 'configs').glob('*/README.md'))
LINK = re.compile(r'\]\(([^)#\s]+)(?:#[^)]*)?\)')


def test_every_relative_link_resolves():
    broken = []
    for page in [*PAGES, *ZOO_PAGES, ROOT / 'CHANGELOG.md']:
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
    code blocks of the README, the docs and the model-zoo pages: shell
    blocks, and the ``$ python ...`` lines of transcripts."""
    for page in [*PAGES, *ZOO_PAGES]:
        for kind, block in re.findall(r'```(\w*)\n(.*?)```',
                                      page.read_text(), re.S):
            for line in block.replace('\\\n', ' ').splitlines():
                if kind not in ('bash', 'shell'):
                    if not line.startswith('$ '):
                        continue
                    line = line[2:]
                words = line.split('#')[0].split()
                if len(words) > 1 and words[0] == 'python' and \
                        words[1].startswith('tools/'):
                    yield str(page.relative_to(ROOT)), words[1], words[2:]


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


def test_every_path_the_docs_name_exists():
    """Each repository path in backticks on a user page exists, or is
    mmpretrain's own tool (in its installed package), or the folder a tool
    writes its first results into."""
    import mmpretrain
    mmpretrain_root = Path(mmpretrain.__file__).parent / '.mim'
    # Folders no run has written yet, and the tool that writes each.
    first_outputs = {'docs/results/gpu/': 'tools/benchmarks/gpu_check.py'}
    for folder, tool in first_outputs.items():
        assert folder.rstrip('/') in (ROOT / tool).read_text()
    missing = []
    for page in [*PAGES, *ZOO_PAGES]:
        text = page.read_text()
        for path in re.findall(r'`((?:configs|tools|docs|mmlsskd|tests|'
                               r'requirements)/[^`\s]*)`', text):
            if re.search(r'[*{}$<>]|\.\.\.', path) or \
                    (ROOT / path).exists() or path in first_outputs:
                continue
            before = text[:text.index(f'`{path}`')][-40:]
            if "mmpretrain's" in before and (mmpretrain_root / path).exists():
                continue
            missing.append(f'{page.relative_to(ROOT)}: {path}')
    assert not missing


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


GENERATED = re.compile(r'<!-- ([\w .,+-]+): begin -->.*?<!-- \1: end -->',
                       re.S)
FIGURE = re.compile(r'(?<![\w.])(?<![A-Za-z]-)\d+\.\d+(?![\w.]*\d)')
# A version or an identifier, not a figure: Python 3.11, torch 2.14,
# Apache-2.0, arXiv 2506.07055.
IDENTIFIER = re.compile(
    r'(?:Python|torch|PyTorch|mmengine|mmcv|mmcv-lite|mmpretrain|mmrazor|'
    r'CUDA|opset|version|arXiv|setuptools==?)\s*[<>=]*\s*$', re.I)


def numbers_of(path: Path) -> set:
    """Every number a committed result file records."""
    import json
    if path.suffix == '.json':
        found = set()

        def walk(value):
            if isinstance(value, dict):
                value = list(value.values())
            if isinstance(value, list):
                for item in value:
                    walk(item)
            elif isinstance(value, (int, float)) and \
                    not isinstance(value, bool):
                found.add(float(value))

        walk(json.loads(path.read_text()))
        return found
    return {float(x) for x in re.findall(r'\d+\.\d+', path.read_text())}


def section_files(section: str) -> list:
    """The committed result files a section names (paths, globs, folders
    under docs/results/)."""
    files = []
    for ref in re.findall(r'docs/results/[\w./*-]*[\w*/]', section):
        if '*' in ref:
            files += ROOT.glob(ref)
        elif (ROOT / ref).is_dir():
            files += (ROOT / ref).rglob('*.json')
        elif (ROOT / ref).is_file():
            files.append(ROOT / ref)
    return files


def unsourced_figures(page: Path, settings: set) -> list:
    """The figures of ``page`` outside its generated blocks and code that
    none of its generated blocks (to the figure's decimals), no setting
    and no result file named in their section holds, each with the words
    before it."""
    generated = {
        float(figure) for block in GENERATED.finditer(page.read_text())
        for figure in FIGURE.findall(block.group())
    }
    text = GENERATED.sub('', page.read_text())
    text = re.sub(r'```.*?```', '', text, flags=re.S)
    text = re.sub(r'<!--.*?-->', '', text, flags=re.S)
    unsourced = []
    for section in re.split(r'\n(?=#+ )', text):
        recorded = set().union(*map(numbers_of, section_files(section)))
        prose = re.sub(r'\]\([^)]*\)', ']', re.sub(r'`[^`]*`', '', section))
        for match in FIGURE.finditer(prose):
            figure = match.group()
            before = prose[max(0, match.start() - 40):match.start()]
            decimals, value = len(figure.split('.')[1]), float(figure)
            if figure in settings or IDENTIFIER.search(before) or any(
                    round(g, decimals) == value for g in generated) \
                    or any(value in (round(v, decimals),
                                     round(100 * v, decimals))
                           for v in recorded):
                continue
            unsourced.append(f'{before.split(chr(10))[-1]}{figure}')
    return unsourced


def test_every_figure_in_the_docs_has_a_source():
    """A figure on a user page sits in a generated block, restates one of
    the page's own (blocks are written from result files), is a setting of
    a shipped config or module, or is recorded in a result file its section
    names. Typed measurements go stale; these cannot."""
    pages = [*PAGES, *ZOO_PAGES]
    settings = set()
    for source in [*(ROOT / 'configs').rglob('*.py'),
                   *(ROOT / 'mmlsskd').rglob('*.py')]:
        settings |= set(FIGURE.findall(source.read_text()))
    unsourced = {
        str(p.relative_to(ROOT)): unsourced_figures(p, settings)
        for p in pages
    }
    assert not {p: f for p, f in unsourced.items() if f}


def test_the_figure_check_finds_a_typed_figure(tmp_path):
    """A measurement typed into prose is reported; the same figure in a
    result file the section names, or in one of the page's generated
    blocks, to its decimals, is not."""
    page = tmp_path / 'page.md'
    typed = '# A page\n\nLSSKD took 5.12 hours, the Python 3.11 run.\n'
    page.write_text(typed)
    assert unsourced_figures(page, set()) == ['LSSKD took 5.12']
    assert unsourced_figures(page, {'5.12'}) == []
    for generated, unsourced in (('5.118', 0), ('5.13', 1)):
        page.write_text(f'{typed}\n<!-- t: begin -->\n| {generated} |\n'
                        f'<!-- t: end -->\n')
        assert len(unsourced_figures(page, set())) == unsourced
    page.write_text(
        '# A page\n\nIts top-1 was 53.20 '
        '(`docs/results/cifar100_study/lsskd_resnet20_0.2frac_60e_bf16_'
        'seed0.json`) and not 53.21.\n')
    unsourced = unsourced_figures(page, set())
    assert len(unsourced) == 1 and unsourced[0].endswith('and not 53.21')
