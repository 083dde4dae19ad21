"""Masking from Python is the gateway's masking: the shared corpus, the
logger and the filter."""

from __future__ import annotations

import io
import logging

import corpus
import pytest
from conftest import SECRET

import warden

CORPUS = corpus.read()
MUST_MASK = CORPUS.masked
MUST_KEEP = CORPUS.kept


@pytest.fixture
def corpus_manager(monkeypatch, config_file):
    """A manager that knows the corpus's exact secrets, as the Rust test's masker does."""
    keys = "\n".join(f"APIcorpus{i:06d}: {s}" for i, s in enumerate(CORPUS.known))
    monkeypatch.setenv("LIVEKIT_KEYS", keys)
    return warden.SecurityManager(config_file)


def test_corpus_is_the_rust_one_and_complete():
    # The Rust corpus test asks for >= 120 cases, half of them look-alikes.
    assert len(MUST_MASK) + len(MUST_KEEP) >= 120
    assert len(MUST_KEEP) * 2 >= len(MUST_MASK) + len(MUST_KEEP) - 1
    assert SECRET in CORPUS.known
    assert any("PRIVATE KEY" in m.line for m in MUST_MASK)


def test_the_corpus_data_file_format_is_read(tmp_path):
    f = tmp_path / "corpus.txt"
    f.write_text("# comment\nKNOWN\tknown-secret-1234\nMASK\ta\\nb password=x1\tx1\n\nKEEP\ttokens: 5\n")
    assert corpus.read(f) == (["known-secret-1234"], [("a\nb password=x1", "x1", None)], ["tokens: 5"])
    f.write_text("MASKED\tx\n")
    with pytest.raises(ValueError, match="line 1"):
        corpus.read(f)


@pytest.mark.parametrize("case", MUST_MASK, ids=[f"mask{i}" for i in range(len(MUST_MASK))])
def test_secrets_are_masked(corpus_manager, case):
    out = corpus_manager.protect_api_keys_in_logs(case.line)
    assert case.secret not in out, f"{case.line!r} -> {out!r}"
    assert warden.MASK in out
    if case.expected is not None:
        assert out == case.expected


@pytest.mark.parametrize("line", MUST_KEEP, ids=[f"keep{i}" for i in range(len(MUST_KEEP))])
def test_look_alikes_are_kept(corpus_manager, line):
    assert corpus_manager.protect_api_keys_in_logs(line) == line


def test_masking_keeps_the_surrounding_text_and_is_idempotent(manager):
    out = manager.protect_api_keys_in_logs('Connecting with api_key="sk-secret123456789" region=eu')
    assert out == 'Connecting with api_key="***MASKED***" region=eu'
    for case in MUST_MASK:
        once = manager.protect_api_keys_in_logs(case.line)
        assert manager.protect_api_keys_in_logs(once) == once


def test_the_configured_api_secret_is_masked_by_exact_match(manager):
    # No pattern matches a bare 43-character secret: only the key ring knows it.
    assert manager.protect_api_keys_in_logs(f"x{SECRET}y") == "x***MASKED***y"
    assert warden._native.mask_patterns(f"x{SECRET}y") == f"x{SECRET}y"


def _capture(logger_name: str):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    base = logging.getLogger(logger_name)
    base.addHandler(handler)
    base.setLevel(logging.INFO)
    base.propagate = False
    return stream, handler, base


def test_secure_logger_masks_messages_arguments_and_tracebacks(manager):
    stream, handler, base = _capture("app.secure")
    try:
        log = warden.SecureLogger("app.secure", manager=manager)
        assert isinstance(log, logging.Logger)
        log.info('Connecting with api_key="sk-secret123456789"')
        log.info("secret is %s", SECRET)
        log.debug("below the level: %s", SECRET)
        try:
            raise RuntimeError(f"failed with token={SECRET}")
        except RuntimeError:
            log.exception("boom Authorization: Bearer %s", "abcdEFGH1234")
    finally:
        base.removeHandler(handler)
    out = stream.getvalue()
    assert 'INFO app.secure Connecting with api_key="***MASKED***"' in out
    assert "INFO app.secure secret is ***MASKED***" in out
    assert "below the level" not in out
    assert "RuntimeError" in out and "Traceback" in out
    for secret in ("sk-secret123456789", SECRET, "abcdEFGH1234"):
        assert secret not in out


def test_masking_filter_on_an_existing_handler(manager):
    stream, handler, base = _capture("livekit.agents")
    handler.addFilter(warden.MaskingFilter(manager))
    try:
        logging.getLogger("livekit.agents.worker").info("worker token=%s ready", "opaque987654")
        logging.getLogger("livekit.agents").warning("bad format %d", "not-a-number", SECRET)
    finally:
        base.removeHandler(handler)
    out = stream.getvalue()
    assert "worker token=***MASKED*** ready" in out
    assert "opaque987654" not in out and SECRET not in out
    assert "bad format" in out


def test_masking_filter_without_a_loadable_configuration_masks_patterns(monkeypatch, tmp_path):
    monkeypatch.setenv("LIVEKIT_SECURITY_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(warden.ConfigError):
        warden.get_security_manager()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "password=%s", ("correcthorse",), None)
    assert warden.MaskingFilter().filter(record) is True
    assert record.getMessage() == "password=***MASKED***"
