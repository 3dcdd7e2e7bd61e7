"""`pip install --no-build-isolation .` puts every package of the checkout (lib and all its subpackages, rfcn,
dff_rfcn) and the compiled ops into a fresh target, and they import from another folder with nothing of
the checkout on the path.

The checkout's files (tracked and new, as git lists them) are copied, with their times, to
build/install_test/src, and the object files go to build/install_test/temp (setup.py: DFF_BUILD_TEMP): both
places last, so ninja recompiles only what changed. The first run compiles the CPU kernels (FORCE_CUDA=0:
the CUDA kernels are the same sources, built by init.sh where a toolkit is found), later runs take seconds."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, 'build', 'install_test')
PACKAGES = ('lib', 'rfcn', 'dff_rfcn')


def _checkout_files():
    out = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard', '-z'], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [f for f in out.split('\0') if f and os.path.isfile(os.path.join(ROOT, f))]


def _source_modules(src):
    """The .py files of every package of the source tree (a folder with __init__.py under lib, rfcn, dff_rfcn)."""
    found = set()
    for top in PACKAGES:
        for folder, dirs, files in os.walk(os.path.join(src, top)):
            dirs[:] = [d for d in dirs if d != '__pycache__']
            if '__init__.py' in files:
                found |= {os.path.relpath(os.path.join(folder, f), src) for f in files if f.endswith('.py')}
    return found


@pytest.mark.slow
def test_pip_install_puts_every_package_and_the_ops_into_a_fresh_target(tmp_path):
    src = os.path.join(WORK, 'src')
    shutil.rmtree(src, ignore_errors=True)
    for rel in _checkout_files():
        os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), os.path.join(src, rel))
    target = tmp_path / 'site'
    env = dict(os.environ, FORCE_CUDA='0', DFF_BUILD_TEMP=os.path.join(WORK, 'temp'), PIP_DISABLE_PIP_VERSION_CHECK='1')
    env.pop('PYTHONPATH', None)
    proc = subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-build-isolation', '--no-deps', '--no-index',
                           '--target', str(target), src], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    expected = _source_modules(src)
    assert {'lib/evaluation/imagenet_vid_eval.py', 'lib/apps/demo.py', 'rfcn/test.py', 'dff_rfcn/tester.py'} <= expected
    installed = {os.path.relpath(os.path.join(folder, f), target) for folder, _, files in os.walk(target)
                 for f in files if f.endswith('.py')}
    assert expected <= installed, sorted(expected - installed)
    assert not {p.split(os.sep)[0] for p in installed} - set(PACKAGES)  # no tests/, tools/, experiments/ ...
    assert list((target / 'lib' / 'ops').glob('_C*.so'))

    # every module imports from the target, from a folder that holds nothing of the checkout
    code = ("import importlib, pkgutil, sys\n"
            "import lib, lib.ops, rfcn, dff_rfcn\n"
            "names = [m.name for p in (lib, rfcn, dff_rfcn) for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.')\n"
            "         if m.name != 'lib.ops._C']  # the op library: loaded by lib.ops (torch.ops.load_library)\n"
            "for name in names:\n"
            "    assert importlib.import_module(name).__file__.startswith(sys.argv[1]), name\n"
            "print(len(names), lib.ops.build_info())\n")
    env = dict(env, PYTHONPATH=str(target), OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-c', code, str(target)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    count, info = proc.stdout.split(' ', 1)
    assert int(count) == len(expected) - len(PACKAGES)  # every module and subpackage below the three
    assert info.strip() == 'cpu'
