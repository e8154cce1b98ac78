"""`batchd help NOSUCH` lists what it takes, each name once (topics and commands share `emulator`
and `completion`)."""

from __future__ import annotations

import pytest

from daemon.cli.main import main


def test_an_unknown_topic_lists_each_choice_once(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["help", "nosuch"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "'exit-codes'" in err and "'retry'" in err
    assert err.count("'emulator'") == 1 and err.count("'completion'") == 1
