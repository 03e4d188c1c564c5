"""Benchmark helpers that call SB3's ``learn`` directly leave no ``/tmp/SB3-<time>`` folder behind."""

from __future__ import annotations

from bench_modules import load_bench


def test_write_sb3_run_leaves_no_logger_folder(tmp_path, sb3_tempdir):
    run = load_bench("sb3_runs").write_sb3_run(tmp_path / "run", algo="sac", steps=120, net_arch=(8, 8),
                                               episode_length=40)
    assert (run / "policy.zip").is_file()
    assert not list(sb3_tempdir.glob("SB3-*")), "SB3 built its default logger folder"
