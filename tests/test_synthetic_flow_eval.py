"""tools/synthetic_flow_eval.py: FlowNet's flow against the synthetic videos' exact flow, and the DFF test with
the exact flow (oracle)."""
import json
import os

import numpy as np
import pytest
import torch

from dff_rfcn.model import DFF
from lib.config import load_config, update_from_list
from lib.dataset.loader import make_imdb
from lib.dataset.synthetic_vid import ensure_dataset
from lib.utils.checkpoint import save_checkpoint, save_state_dict
from tests.small_run import ROOT, tiny_overrides
from tools.synthetic_flow_eval import GroundTruthFlow, feature_flow, main, measure, object_cells

CFG = os.path.join(ROOT, 'experiments/dff_rfcn/cfgs/synthetic_vid_cpu.yaml')


def test_feature_flow_is_in_cells_of_the_resized_image():
    flow = np.zeros((40, 72, 2), np.float32)
    flow[..., 0], flow[..., 1] = 16.0, -8.0
    g = feature_flow(flow, 1.0, (3, 5), 16)
    assert g.shape == (2, 3, 5)
    assert torch.allclose(g[0], torch.ones(3, 5)) and torch.allclose(g[1], torch.full((3, 5), -0.5))
    g2 = feature_flow(flow, 2.0, (5, 9), 16)  # the image and its flow double: 32 px = 2 cells
    assert torch.allclose(g2[0], torch.full((5, 9), 2.0)) and torch.allclose(g2[1], torch.full((5, 9), -1.0))
    label = np.zeros((40, 72), np.uint8)
    label[:16, :16] = 1   # cell (0, 0) fully object, (0, 1) 7/16, (0, 2) exactly half: only the first counts
    label[:7, 16:32] = 1
    label[:, 32:40] = 1
    m = object_cells(label, 1.0, (3, 5), 16)
    assert m[0, 0] and not m[0, 1] and int(m.sum()) == 1


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp('flow_eval'))
    cfg = update_from_list(load_config(CFG), tiny_overrides(tmp, val_videos=2, val_frames=12, train_videos=0,
                                                             det_images=0) + ['TEST.KEY_FRAME_INTERVAL=5'])
    ensure_dataset(cfg.dataset.dataset_path, **dict(cfg.dataset.SYNTHETIC))
    return tmp, cfg


def test_measure_gives_zero_error_for_the_exact_flow_and_the_zero_flow_figures_for_zero(tiny):
    _, cfg = tiny
    frames = make_imdb(cfg, cfg.dataset.test_image_set).test_frames()
    gt = GroundTruthFlow(cfg)

    def exact(frame, cur, key):
        return gt(frame, 1.0, (6, 10))[0][None]

    r = measure(cfg, exact, frames, gt)
    assert r['pairs'] == 2 * (12 - 3)  # key frames 0, 5, 10 of each video are not measured
    assert r['net_all'] < 1e-6 and r['net_obj'] < 1e-6
    assert r['zero_all'] > 0.01 and r['zero_obj'] > 0.01 and r['object_cells'] > 0
    z = measure(cfg, lambda frame, cur, key: torch.zeros(1, 2, 6, 10), frames, gt)
    assert z['net_all'] == pytest.approx(r['zero_all']) and z['net_obj'] == pytest.approx(r['zero_obj'])


def test_main_measures_a_flownet_and_runs_the_oracle_on_a_dff_checkpoint(tiny, tmp_path, capsys):
    tmp, cfg = tiny
    sets = tiny_overrides(tmp, val_videos=2, val_frames=12, train_videos=0, det_images=0) + [
        'TEST.KEY_FRAME_INTERVAL=5']
    torch.manual_seed(0)
    model = DFF(cfg)
    flownet_file = str(tmp_path / 'flownet-0000.pth')
    save_state_dict(flownet_file, model.flownet.state_dict())
    r = main(['--cfg', CFG, '--weights', flownet_file, '--set', *sets])
    assert r['pairs'] == 18 and r['net_all'] > 0
    with pytest.raises(ValueError, match='needs a DFF checkpoint'):
        main(['--cfg', CFG, '--weights', flownet_file, '--oracle', '--set', *sets])
    ck = str(tmp_path / 'dff-0001.pth')
    save_checkpoint(ck, {'model': model.state_dict(), 'epoch': 1})
    r2 = main(['--cfg', CFG, '--weights', ck, '--oracle', '--set', *sets])
    assert r2['net_all'] == pytest.approx(r['net_all'])  # the same FlowNet, inside the checkpoint
    out = capsys.readouterr().out
    assert 'object cells: FlowNet' in out and 'DFF with the ground-truth flow: mAP@0.5' in out
    gt_dir = [d for d in os.listdir(os.path.join(tmp, 'output', 'synthetic_vid_cpu')) if d.endswith('_gt_flow')]
    assert gt_dir == ['VID_val_videos_gt_flow']
    with open(os.path.join(tmp, 'output', 'synthetic_vid_cpu', gt_dir[0], 'eval.json')) as f:
        result = json.load(f)
    assert 'mAP' in result and result['run']['checkpoint']['path'] == ck  # what the oracle tested
    assert result['run']['settings']['detector'] == 'Detector' and result['run']['settings']['KEY_FRAME_INTERVAL'] == 5
    junk = tmp_path / 'junk.pth'
    junk.write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='junk.pth could not be read'):
        main(['--cfg', CFG, '--weights', str(junk), '--set', *sets])
    with pytest.raises(FileNotFoundError, match='not found'):
        main(['--cfg', CFG, '--weights', str(tmp_path / 'missing.pth'), '--set', *sets])
