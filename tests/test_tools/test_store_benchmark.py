"""tools/benchmarks/past_prediction_store.py: the store's bytes per sample
in each storage form, by hand, and docs/benchmarks.md's table from the
committed record."""
import json
import sys

from conftest import ROOT, run_main

SCRIPT = 'tools/benchmarks/past_prediction_store.py'


def test_store_benchmark_records_each_forms_bytes(tmp_path, monkeypatch,
                                                  capfd):
    out = tmp_path / 'store.json'
    run_main(SCRIPT, ['--sample-rows', '64', '--repeats', '1', '--out', out],
             monkeypatch, capfd)
    record = json.loads(out.read_text())
    # Per sample: the classifier's C values and, for each of 4 branches,
    # 4 views of C*4 joint classes, plus one int64 (the epoch the row was
    # written in).
    for dataset, classes in (('CIFAR-100', 100), ('ImageNet-1k', 1000)):
        values = classes + 4 * 4 * classes * 4
        forms = record['datasets'][dataset]
        assert forms['float32']['bytes_per_sample'] == 4 * values + 8
        assert forms['float16']['bytes_per_sample'] == 2 * values + 8
        assert forms['float16 top-32']['bytes_per_sample'] < \
            forms['float16']['bytes_per_sample']
    assert record['datasets']['CIFAR-100']['float32']['total_gib'] == \
        26008 * 50_000 / 2**30
    assert record['step_ms'] > 0
    assert set(record['store_share']) == set(
        record['datasets']['CIFAR-100'])


def test_benchmarks_page_shows_the_committed_store_record():
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    from past_prediction_store import MARKERS, PAGE, RECORD, report
    block = '\n'.join(
        [MARKERS[0], *report(json.loads(RECORD.read_text())), MARKERS[1]])
    assert block in PAGE.read_text()
