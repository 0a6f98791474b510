"""`python -m sr mos simulate --quick`: the real store and statistics recover a known effect."""
from sr.mos.simulate import TRUE_MOS, run, to_text


def test_simulate_quick_recovers_known_effect():
    r = run(quick=True, seed=1)
    c = r.check
    assert c["votes_read"] == c["votes_written"] and c["problems"] == 0  # through the real CSV store
    assert c["effect"]["found"] and abs(c["effect"]["mean_diff"] - c["effect"]["true_diff"]) < 0.4
    assert sum(c["true_mos_in_ci"].values()) >= len(TRUE_MOS) - 1
    assert c["spammers_dropped"] >= c["spammers"] // 2
    assert 0.0 <= r.false_positive["rate"] <= 0.15  # about 5% (150 replicates in --quick)
    p = r.power["power"]
    assert p[10] < p[60]  # more raters, more power
    text = to_text(r)
    assert "False-positive rate" in text and "Raters needed for 80% power" in text


def test_simulate_cli(capsys, tmp_path):
    import json

    from sr.mos_cli import main

    assert main(["simulate", "--quick", "--json", str(tmp_path / "s.json")]) == 0
    assert "(b) Power to detect a 0.3 MOS difference" in capsys.readouterr().out
    assert json.loads((tmp_path / "s.json").read_text())["power"]["delta"] == 0.3
