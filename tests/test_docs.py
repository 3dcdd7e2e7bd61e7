"""The docs stay followable from a clone: no citation of material outside the repository, every
`docs/<file>.md#<anchor>` link and every `docs/fidelity.md §N.M` reference points at a heading that exists
(GitHub's anchor rules), and every location and test that docs/fidelity.md names exists."""
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, 'docs')
FIDELITY = os.path.join(DOCS, 'fidelity.md')
TEXT_EXTENSIONS = ('.py', '.md', '.yaml', '.yml', '.sh', '.txt', '.cpp', '.cu', '.h', '.cuh', '.toml', '.cfg', '.ini')
SKIP_DIRS = {'data', 'output', 'build', 'dist', '__pycache__', 'venv', 'env'}
# The original's two yamls are kept byte for byte (docs/fidelity.md §6.1), comments included.
FROZEN = {os.path.join('experiments', 'rfcn', 'cfgs', 'resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml'),
          os.path.join('experiments', 'dff_rfcn', 'cfgs', 'resnet_v1_101_flownet_imagenet_vid_rfcn_end2end_ohem.yaml')}
# Citations a clone cannot follow: a notes file outside the repository and its numbered sections. The
# patterns are assembled so that this file does not match them itself.
SPEC = 'spec'
BAD_CITATIONS = [
    re.compile(r'\b' + SPEC + r'\s*(?:§|sections?\b)?\s*\d', re.I),  # "<s> 3.2", "<s>§3", "<s> section 7"
    re.compile(r'\b(?:the|per the|from the)\s+' + SPEC + r"(?:'s)?\b", re.I),  # "the <s>'s formulas"
    re.compile('dff_' + SPEC, re.I),
    re.compile('shared' + '/reference', re.I),
    re.compile(r'\.\./' + r'shared\b'),
]
DOC_LINK = re.compile(r'\bdocs/([\w.-]+\.md)(?:#([\w-]+))?')
MD_LINK = re.compile(r'\]\(([^)\s]*)\)')
SECTION_REF = re.compile(r'docs/fidelity\.md`?\s*((?:§\s*\d+(?:\.\d+)?(?:\s*(?:,|/|and)\s*)?)+)')
LOCATION = re.compile(r'`((?:lib|rfcn|dff_rfcn|tools|experiments|model)/[\w/]+\.py):([A-Za-z_][\w.]*)`')
TEST_ID = re.compile(r'`(tests/[\w/]+\.py)::(\w+)`')


def section_numbers(run):
    return re.findall(r'§\s*(\d+(?:\.\d+)?)', run)


def text_files():
    """Relative paths of the repository's text files (not data, outputs, builds or hidden folders)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith('.') and d not in SKIP_DIRS
                             and not d.endswith('.egg-info'))
        for name in sorted(filenames):
            if name.endswith(TEXT_EXTENSIONS):
                out.append(os.path.relpath(os.path.join(dirpath, name), ROOT))
    return out


def read(rel):
    with open(os.path.join(ROOT, rel), encoding='utf-8', errors='replace') as f:
        return f.read()


def slug(heading):
    """GitHub's anchor for a heading: link markup reduced to its text, lower case, punctuation dropped
    (letters, digits, '_', '-' and spaces kept), spaces turned into '-'."""
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', heading.strip()).lower()
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def headings(path):
    """(anchors, heading texts) of a markdown file, outside fenced code; repeated anchors get -1, -2, ..."""
    anchors, texts, seen, fenced = set(), [], {}, False
    with open(path, encoding='utf-8') as f:
        for line in f:
            if line.lstrip().startswith('```'):
                fenced = not fenced
                continue
            m = None if fenced else re.match(r'#{1,6}\s+(.*?)\s*#*\s*$', line)
            if m:
                base = slug(m.group(1))
                n = seen.get(base, 0)
                seen[base] = n + 1
                anchors.add(base if n == 0 else f'{base}-{n}')
                texts.append(m.group(1))
    return anchors, texts


def test_slug_follows_github():
    assert slug('5.2 Feature propagation') == '52-feature-propagation'
    assert slug('Testing the official models on ImageNet VID val (reproducing the table)') == \
        'testing-the-official-models-on-imagenet-vid-val-reproducing-the-table'
    assert slug('11.1 Box de-normalisation on the output') == '111-box-de-normalisation-on-the-output'
    assert slug('The `.params` file [format](x.md)') == 'the-params-file-format'


def test_citation_check_catches_what_it_should():
    bad = [f'({SPEC} 3.2)', f'{SPEC.title()} 6.1: per class', f'{SPEC}§4', f'dff_{SPEC}.md section 7',
           f"from the {SPEC}'s formulas", 'see ../' + 'shared/notes', 'shared/' + 'reference/x.md', f'{SPEC} section 5']
    good = ['importlib.util.spec_from_file_location', "fmt(v, spec='{:.1f}')", 'test_real_yamls_carry_the_spec_values',
            'docs/fidelity.md §3.2', 'the original\'s lib/rpn/rpn.py', 'respecting 3 rules']
    for s in bad:
        assert any(p.search(s) for p in BAD_CITATIONS), s
    for s in good:
        assert not any(p.search(s) for p in BAD_CITATIONS), s


def test_section_references_are_all_read():
    text = 'see docs/fidelity.md §3.4, §3.5 and §10 / §6.2; `docs/fidelity.md` §7. Not §9.'
    assert [n for run in SECTION_REF.findall(text) for n in section_numbers(run)] == ['3.4', '3.5', '10', '6.2', '7']


def test_no_citation_of_material_outside_the_repository():
    found = []
    for rel in text_files():
        if rel in FROZEN:
            continue
        for lineno, line in enumerate(read(rel).splitlines(), 1):
            if any(p.search(line) for p in BAD_CITATIONS):
                found.append(f'{rel}:{lineno}: {line.strip()}')
    assert not found, 'cite docs/fidelity.md or the original\'s file instead:\n' + '\n'.join(found)


def test_every_docs_link_points_at_an_existing_file_and_heading():
    cache = {}

    def anchors_of(path):
        if path not in cache:
            cache[path] = headings(path)[0]
        return cache[path]

    broken = []
    for rel in text_files():
        text = read(rel)
        targets = [(os.path.join(DOCS, f), a) for f, a in DOC_LINK.findall(text)]
        if rel.endswith('.md'):  # relative markdown links, including #anchors into the same file
            here = os.path.dirname(os.path.join(ROOT, rel))
            for link in MD_LINK.findall(text):
                if re.match(r'[a-z]+:', link):
                    continue  # https:, mailto:
                path, _, anchor = link.partition('#')
                target = os.path.normpath(os.path.join(here, path)) if path else os.path.join(ROOT, rel)
                if target.endswith('.md'):
                    targets.append((target, anchor))
        for target, anchor in targets:
            where = f'{rel}: {os.path.relpath(target, ROOT)}' + (f'#{anchor}' if anchor else '')
            if not os.path.isfile(target):
                broken.append(where + ' (no such file)')
            elif anchor and anchor not in anchors_of(target):
                broken.append(where + ' (no such heading)')
    assert not broken, '\n'.join(broken)


def test_section_references_name_existing_sections():
    _, texts = headings(FIDELITY)
    numbers = {m.group(1) for t in texts for m in [re.match(r'(\d+(?:\.\d+)?)\s', t)] if m}
    assert {'1', '5.2', '11', '12'} <= numbers
    missing = []
    for rel in text_files():
        for run in SECTION_REF.findall(read(rel)):
            for num in section_numbers(run):
                if num not in numbers:
                    missing.append(f'{rel}: docs/fidelity.md §{num}')
    # inside fidelity.md: a "[§N.M](#anchor)" link's number is the number of the section it points at
    for num, anchor in re.findall(r'\[§(\d+(?:\.\d+)?)\]\(#([\w-]+)\)', read('docs/fidelity.md')):
        if not anchor.startswith(num.replace('.', '') + '-'):
            missing.append(f'docs/fidelity.md: [§{num}](#{anchor}) points at another section')
    assert not missing, '\n'.join(missing)


def _defines(path, name):
    src = read(path)
    return re.search(rf'^\s*(?:async\s+)?(?:def|class)\s+{re.escape(name)}\b', src, re.M) is not None


def test_fidelity_locations_and_tests_exist():
    text = read('docs/fidelity.md')
    locations, tests = LOCATION.findall(text), TEST_ID.findall(text)
    assert len(locations) > 40 and len(tests) > 80
    missing = []
    for path, name in locations:
        if not os.path.isfile(os.path.join(ROOT, path)):
            missing.append(f'{path} (no such file)')
        elif not all(_defines(path, part) for part in name.split('.')):
            missing.append(f'{path}:{name} (not defined there)')
    for path, name in tests:
        if not os.path.isfile(os.path.join(ROOT, path)) or not _defines(path, name):
            missing.append(f'{path}::{name}')
    for path in re.findall(r'`(csrc/[\w/.]+)`', text):
        if not os.path.isfile(os.path.join(ROOT, path)):
            missing.append(f'{path} (no such file)')
    assert not missing, 'docs/fidelity.md names what is not there:\n' + '\n'.join(missing)


@pytest.mark.parametrize('name', ['LICENSE', 'NOTICE', 'CITATION.cff'])
def test_license_notice_and_citation_are_there(name):
    text = read(name)
    assert 'Deep Feature Flow' in text or name == 'LICENSE'
    if name == 'LICENSE':
        assert text.startswith('MIT License') and 'THE SOFTWARE IS PROVIDED "AS IS"' in text
    if name == 'NOTICE':
        assert 'Copyright (c) 2017 Microsoft Corporation' in text and 'Permission is hereby granted' in text
    if name == 'CITATION.cff':
        assert 'cff-version:' in text and 'Zhu' in text and 'Deep Feature Flow for Video Recognition' in text
