"""The import rules of the code, read from the source with `ast` (nothing is imported).

Layers, lowest first; a module imports from its own layer and the layers below it, never above:

    0  lib.ops                          the compiled custom ops (csrc/ops)
    1  lib.config, lib.bbox, lib.utils  configuration, box arithmetic, files / devices / images / CLI
    2  lib.rpn, lib.rcnn                anchor and roi targets, losses
    3  lib.dataset, lib.model           image databases and loaders; networks, weights, MXNet converter
    4  lib.evaluation                   the ImageNet VID evaluation (annotations come from lib.dataset)
    5  lib.core                         training, testing, the train_test sequence
    6  lib.apps                         applications built on lib.core (the demos' shared loop)
    7  rfcn, dff_rfcn                   the two variants: peers, neither imports the other
    8  experiments/, tools/             entry scripts and tools
    (tests/ may import anything; nothing imports tests/ or the weights folder model/)

Inside lib there is no import cycle at all, between any two modules, counting the imports inside
functions. An import inside a function body of lib, rfcn, dff_rfcn or experiments says why it is there:
either a trailing comment `# lazy: <reason>` on the import (e.g. it loads the custom ops and --help has to
work before they are built), or it is an optional dependency imported in a `try:` whose handler catches
ImportError. An import that only dodges a cycle gets no marker: it belongs at the top of the file and the
cycle has to go. No file outside tests/ touches sys.path: the packages are installed (init.sh)."""
import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = ('lib', 'rfcn', 'dff_rfcn', 'experiments', 'tools', 'model', 'tests')
LAYERS = (('lib.ops',), ('lib.config', 'lib.bbox', 'lib.utils'), ('lib.rpn', 'lib.rcnn'),
          ('lib.dataset', 'lib.model'), ('lib.evaluation',), ('lib.core',), ('lib.apps',), ('rfcn', 'dff_rfcn'),
          ('experiments', 'tools'))
PEERS = ('rfcn', 'dff_rfcn')
LAZY_CHECKED = ('lib', 'rfcn', 'dff_rfcn', 'experiments')
LAZY_MARKER = re.compile(r'#.*\blazy: *\S')


# ------------------------------------------------------------------------------------------ the checker
def find_modules(root, tops=PROJECT):
    """{dotted module name: path} of the .py files under the given top-level folders."""
    modules = {}
    for top in tops:
        for folder, dirs, files in os.walk(os.path.join(root, top)):
            dirs[:] = sorted(d for d in dirs if d != '__pycache__' and not d.startswith('.'))
            for name in sorted(files):
                if name.endswith('.py'):
                    rel = os.path.relpath(os.path.join(folder, name), root)[:-3].split(os.sep)
                    if rel[-1] == '__init__':
                        rel = rel[:-1]
                    modules['.'.join(rel)] = os.path.join(folder, name)
    return modules


def _package(module, path):
    return module if path.endswith('__init__.py') else module.rpartition('.')[0]


def _nearest(name, modules):
    """The module that `name` (a module, or a name inside one) resolves to, None outside the project."""
    while name:
        if name in modules:
            return name
        name = name.rpartition('.')[0]
    return None


def _in_function(node, parents):
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return True
    return False


def _optional(node, parents):
    """Inside the body of a `try:` that catches ImportError (an optional dependency)."""
    child = node
    while child in parents:
        parent = parents[child]
        if isinstance(parent, ast.Try) and child in parent.body:
            for handler in parent.handlers:
                caught = handler.type
                names = [caught] if not isinstance(caught, ast.Tuple) else list(caught.elts)
                if any(isinstance(n, ast.Name) and n.id in ('ImportError', 'ModuleNotFoundError') for n in names):
                    return True
        if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return False
        child = parent
    return False


def read_imports(module, path, modules):
    """[(target module, line, inside a function, marked lazy or optional)] of the project imports of a file."""
    with open(path, encoding='utf-8') as f:
        source = f.read()
    lines = source.splitlines()
    tree = ast.parse(source, path)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = _package(module, path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = package.split('.')
                anchor = '.'.join(parts[:len(parts) - node.level + 1])
                base = f'{anchor}.{base}' if base else anchor
            names = [f'{base}.{a.name}' if f'{base}.{a.name}' in modules else base for a in node.names]
        else:
            continue
        inside = _in_function(node, parents)
        text = lines[node.lineno - 1:node.end_lineno]
        marked = any(LAZY_MARKER.search(line) for line in text) or _optional(node, parents)
        for name in names:
            target = _nearest(name, modules)
            if target is not None and name.split('.')[0] in PROJECT:
                found.append((target, node.lineno, inside, marked))
    return found


def layer_of(module):
    best = None
    for i, group in enumerate(LAYERS):
        for prefix in group:
            if module == prefix or module.startswith(prefix + '.'):
                if best is None or len(prefix) > len(best[1]):
                    best = (i, prefix)
    return best


def _ancestors(module):
    parts = module.split('.')
    return {'.'.join(parts[:i]) for i in range(1, len(parts))}


def import_graph(modules, imports):
    """module -> set of modules its import runs (the target and the target's packages' __init__, except
    the importer's own packages, which are being initialised already)."""
    graph = {m: set() for m in modules}
    for m, found in imports.items():
        for target, _, _, _ in found:
            for t in {target} | _ancestors(target):
                if t in modules and t != m and t not in _ancestors(m):
                    graph[m].add(t)
    return graph


def cycles(graph, members):
    """The strongly connected components with more than one module among `members` (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in members:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(members):
        if v not in index:
            visit(v)
    return out


def violations(root):
    """Every broken rule of the tree at `root`, one line each."""
    modules = find_modules(root)
    imports = {m: read_imports(m, p, modules) for m, p in modules.items()}
    problems = []
    for m, found in sorted(imports.items()):
        top = m.split('.')[0]
        if top == 'tests':
            continue
        rel = os.path.relpath(modules[m], root)
        mine = layer_of(m)
        for target, line, inside, marked in found:
            where = f'{rel}:{line}: {m} imports {target}'
            other = target.split('.')[0]
            if other in ('tests', 'model'):
                problems.append(f'{where} (nothing imports tests/ or the weights folder model/)')
                continue
            theirs = layer_of(target)
            if top in PEERS and other in PEERS and top != other:
                problems.append(f'{where} (rfcn and dff_rfcn are peers: shared code goes to lib)')
            elif mine is not None and theirs is not None and theirs[0] > mine[0]:
                problems.append(f'{where} (layer {mine[0]} {mine[1]} imports layer {theirs[0]} {theirs[1]})')
            if inside and not marked and top in LAZY_CHECKED:
                problems.append(f'{where} inside a function without `# lazy: <reason>` (move it to the top of '
                                f'the file; if it dodged a cycle, remove the cycle)')
    lib = {m for m in modules if m.split('.')[0] == 'lib'}
    for comp in cycles(import_graph(modules, imports), lib):
        problems.append('import cycle inside lib: ' + ' -> '.join(comp))
    for m, path in sorted(modules.items()):
        if m.split('.')[0] != 'tests':
            with open(path, encoding='utf-8') as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                if (isinstance(node, ast.Attribute) and node.attr == 'path' and isinstance(node.value, ast.Name)
                        and node.value.id == 'sys'):
                    problems.append(f'{os.path.relpath(path, root)}:{node.lineno}: sys.path outside tests/ (the '
                                    f'packages are installed: init.sh)')
    return problems


# ------------------------------------------------------------------------------------------ the tests
def test_the_code_keeps_its_layers():
    problems = violations(ROOT)
    assert not problems, '\n'.join(problems)


def test_every_package_has_a_layer():
    modules = find_modules(ROOT, ('lib', 'rfcn', 'dff_rfcn'))
    assert 'lib.model.flownet' in modules and 'lib.evaluation.imagenet_vid_eval' in modules
    missing = sorted(m for m in modules if m != 'lib' and layer_of(m) is None)
    assert not missing, f'modules outside every layer (add their package to LAYERS): {missing}'


def _tree(tmp_path, files):
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(tmp_path)


def test_the_checker_finds_each_kind_of_violation(tmp_path):
    root = _tree(tmp_path, {
        'lib/__init__.py': '',
        'lib/utils/__init__.py': '',
        'lib/utils/a.py': 'from lib.model.b import f\n',                       # utils above model
        'lib/model/__init__.py': '',
        'lib/model/b.py': 'def f():\n    from lib.utils import a\n',          # cycle, unmarked
        'lib/model/c.py': ('def g():\n    import lib.ops  # lazy: loads the ops\n'
                           '    try:\n        import fcntl\n    except ImportError:\n        pass\n'),
        'lib/ops/__init__.py': '',
        'lib/core/__init__.py': 'import rfcn.model\n',                         # lib imports a variant
        'rfcn/__init__.py': '', 'rfcn/model.py': 'from dff_rfcn import model\n',  # peers
        'dff_rfcn/__init__.py': '', 'dff_rfcn/model.py': 'import sys\nsys.path.insert(0, "..")\n',
        'tools/t.py': 'def main():\n    import lib.core\n',                  # tools: not checked for lazy
    })
    found = '\n'.join(violations(root))
    assert 'lib/utils/a.py:1: lib.utils.a imports lib.model.b (layer 1 lib.utils imports layer 3 lib.model)' in found
    assert 'lib/model/b.py:2: lib.model.b imports lib.utils.a inside a function without `# lazy' in found
    assert 'import cycle inside lib: lib.model.b -> lib.utils.a' in found
    assert 'lib/core/__init__.py:1: lib.core imports rfcn.model (layer 5 lib.core imports layer 7 rfcn)' in found
    assert 'rfcn/model.py:1: rfcn.model imports dff_rfcn.model (rfcn and dff_rfcn are peers' in found
    assert 'dff_rfcn/model.py:2: sys.path outside tests/' in found
    assert 'lib/model/c.py' not in found and 'tools/t.py' not in found
    assert len(violations(root)) == 6
