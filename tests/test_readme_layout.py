"""The README's "Architecture of the code" block names every module of every package, and nothing else."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.name for p in ROOT.glob('smfd_*') if (p / '__init__.py').exists())


def _architecture_block():
    text = (ROOT / 'README.md').read_text(encoding='utf-8')
    section = text.split('## Architecture of the code', 1)[1].split('\n## ', 1)[0]
    return section.split('```', 2)[1]


def _listed_modules():
    """{package: {module.py, ...}} from lines '  name.py[, other.py]  description' under a 'package/' line."""
    listed, package = {}, None
    for line in _architecture_block().splitlines():
        head = re.match(r'^(smfd_\w+)/', line)
        if head:
            package = head.group(1)
            listed.setdefault(package, set())
            continue
        if package and line.startswith('  '):
            names = re.match(r'^\s+((?:[\w.]+\.py(?:,\s*)?)+)', line)
            if names:
                listed[package].update(n.strip() for n in names.group(1).split(','))
        elif not line.startswith(' '):
            package = None
    return listed


def test_every_package_and_module_is_in_the_readme():
    listed = _listed_modules()
    assert sorted(listed) == PACKAGES
    for package in PACKAGES:
        actual = {p.name for p in (ROOT / package).glob('*.py') if p.name != '__init__.py'}
        assert listed[package] == actual, (package, sorted(actual - listed[package]), sorted(listed[package] - actual))


def test_every_script_is_in_the_readme():
    block = _architecture_block()
    for script in (ROOT / 'scripts').glob('*.py'):
        assert script.stem in block, script.name


def test_no_module_or_test_imports_a_script():
    """scripts/ are thin command lines: their code lives in the packages, so nothing imports a script."""
    pattern = re.compile(r"(^\s*(from|import)\s+scripts\b)|(spec_from_file_location\([^)]*scripts)", re.M)
    offenders = [str(path.relative_to(ROOT)) for folder in ['tests', *PACKAGES]
                 for path in (ROOT / folder).rglob('*.py') if pattern.search(path.read_text(encoding='utf-8'))]
    assert offenders == [], offenders


def test_scripts_are_thin():
    """Each script is a command line over a package: at most an argparse ``main``, no classes or helpers."""
    import ast
    for script in (ROOT / 'scripts').glob('*.py'):
        text = script.read_text(encoding='utf-8')
        defined = [node.name for node in ast.parse(text).body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
        assert defined in ([], ['main']), (script.name, defined)
        assert len(text.splitlines()) <= 60, (script.name, len(text.splitlines()))
