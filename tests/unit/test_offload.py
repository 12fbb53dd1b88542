"""workspace.offload: which pool a call runs in. The live proof that the hub keeps serving meanwhile, under real
eventlet and gevent workers, is tests/security/test_sec_rest_login.py; here each branch runs in this (unpatched)
process: a plain call when nothing is patched, another OS thread through each library's pool when told it is."""

import threading

import pytest

from workspace import offload


def test_unpatched_process_calls_in_place():
    import eventlet  # noqa: F401 - imported but not monkey-patched: still a plain call
    import gevent  # noqa: F401

    assert not offload._patched_by("eventlet") and not offload._patched_by("gevent")
    assert offload.in_thread(threading.get_ident) == threading.get_ident()


@pytest.mark.parametrize("library", ["eventlet", "gevent"])
def test_a_green_process_runs_the_call_in_another_os_thread(monkeypatch, library):
    monkeypatch.setattr(offload, "_patched_by", lambda name: name == library)
    assert offload.in_thread(threading.get_ident) != threading.get_ident()
    with pytest.raises(ZeroDivisionError):
        offload.in_thread(divmod, 1, 0)
