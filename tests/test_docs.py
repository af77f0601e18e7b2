"""The README and the docs hold together: every relative link resolves,
and the docs cover what the README points to."""
import re
from pathlib import Path

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
