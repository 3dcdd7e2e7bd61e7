"""A dataset of one's own in the ILSVRC layout: its classes listed in the config (dataset.CLASSES), used by the
training roidb, the evaluation, the re-scoring CLI and the demos; clear errors for a bad list."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lib.config import load_config, update_from_list
from lib.dataset.loader import make_imdb
from lib.dataset.synthetic_vid import ensure_dataset
from lib.dataset.vid_classes import BACKGROUND, class_list_from_entries, dataset_classes
from lib.apps.demo import DemoInputError, class_names_from_cfg
from tests.small_run import ROOT, TINY_SYNTHETIC, run_script, tiny_overrides

CFG = 'experiments/rfcn/cfgs/synthetic_vid_cpu.yaml'
# the synthetic data's WNIDs in another order, under other names; one given as a bare label
OWN = [['n02391049', 'stripy'], ['n02691156', 'plane'], 'n02958343', ['n02084071', 'dog'], ['n02374451', 'horse']]
OWN_SETS = ['dataset.dataset=ImageNetVID', f'dataset.CLASSES={json.dumps(OWN)}', 'dataset.NUM_CLASSES=6']


def test_class_list_from_entries():
    names, wnids = class_list_from_entries(OWN)
    assert names == (BACKGROUND, 'stripy', 'plane', 'n02958343', 'dog', 'horse')
    assert wnids == (BACKGROUND, 'n02391049', 'n02691156', 'n02958343', 'n02084071', 'n02374451')
    with pytest.raises(ValueError, match=r"dataset.CLASSES\[1\] = \['a'\]: expected a label"):
        class_list_from_entries(['x', ['a']])
    with pytest.raises(ValueError, match=r"duplicate WNIDs \['n1'\]"):
        class_list_from_entries(['n1', ['n1', 'other']])
    with pytest.raises(ValueError, match='is implied'):
        class_list_from_entries([BACKGROUND, 'n1'])


def test_num_classes_must_match_the_list():
    cfg = update_from_list(load_config(os.path.join(ROOT, CFG)), OWN_SETS[:2])  # NUM_CLASSES stays 6
    assert len(dataset_classes(cfg, 'imagenet_vid')[0]) == 6
    cfg.dataset.NUM_CLASSES = 31
    with pytest.raises(ValueError, match=r'dataset.NUM_CLASSES = 31 but dataset.CLASSES \(5 classes\) gives 6'):
        dataset_classes(cfg, 'imagenet_vid')
    with pytest.raises(DemoInputError, match='set NUM_CLASSES to 6'):
        class_names_from_cfg(cfg)
    cfg.dataset.NUM_CLASSES = 6
    assert class_names_from_cfg(cfg) == [BACKGROUND, 'stripy', 'plane', 'n02958343', 'dog', 'horse']
    plain = load_config(os.path.join(ROOT, 'experiments/rfcn/cfgs/resnet_v1_101_imagenet_vid_rfcn_end2end_ohem.yaml'))
    assert len(dataset_classes(plain, 'imagenet_vid')[0]) == 31


def test_synthetic_dataset_refuses_a_class_list(tmp_path):
    cfg = update_from_list(load_config(os.path.join(ROOT, CFG)),
                           tiny_overrides(tmp_path) + [f'dataset.CLASSES={json.dumps(OWN)}'])
    with pytest.raises(ValueError, match='synthetic dataset has its own classes'):
        make_imdb(cfg, 'VID_train_15frames')


@pytest.mark.slow
def test_own_dataset_trains_tests_and_rescores_with_its_class_list(tmp_path):
    ensure_dataset(os.path.join(tmp_path, 'synthetic_vid'), **TINY_SYNTHETIC)  # stands in for the user's data
    sets = tiny_overrides(tmp_path) + OWN_SETS
    cfg = update_from_list(load_config(os.path.join(ROOT, CFG)), sets)
    imdb = make_imdb(cfg, 'VID_train_15frames')
    assert imdb.classes[1] == 'stripy' and imdb.num_classes == 6
    synthetic = make_imdb(update_from_list(load_config(os.path.join(ROOT, CFG)), tiny_overrides(tmp_path)),
                          'VID_train_15frames')
    # the same objects, labelled by the own list: zebra (n02391049) is class 1 there, 5 in the synthetic list
    remap = np.array([0, 2, 3, 4, 5, 1])
    for own, syn in zip(imdb.gt_roidb(), synthetic.gt_roidb()):
        assert np.array_equal(own['gt_classes'], remap[syn['gt_classes']])

    run_script('experiments/rfcn/rfcn_end2end_train_test.py', CFG, sets + ['TRAIN.MAX_ITERS=3'])
    test_dir = os.path.join(tmp_path, 'output', 'synthetic_vid_cpu', 'VID_val_frames')
    result = json.load(open(os.path.join(test_dir, 'eval.json')))
    assert set(result['AP']) <= {'stripy', 'plane', 'n02958343', 'dog', 'horse'} and result['AP']
    own_yaml = tmp_path / 'own.yaml'
    own_yaml.write_text('dataset:\n  dataset: ImageNetVID\n  NUM_CLASSES: 6\n  CLASSES: ' + json.dumps(OWN) + '\n')
    rescored = os.path.join(tmp_path, 'rescored.json')
    proc = subprocess.run([sys.executable, '-m', 'lib.evaluation.imagenet_vid_eval',
                           '--dets', os.path.join(test_dir, 'det_VID_val_frames_all.txt'),
                           '--eval-list', os.path.join(test_dir, 'VID_val_frames_eval.txt'),
                           '--annotations', os.path.join(tmp_path, 'synthetic_vid', 'Annotations', 'VID'),
                           '--classes', str(own_yaml), '--out', rescored], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.load(open(rescored))
    assert again['mAP'] == pytest.approx(result['mAP'], abs=1e-9) and again['AP'] == result['AP']
