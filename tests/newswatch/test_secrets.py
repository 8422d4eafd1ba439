import pytest

from newswatch.secrets import MissingSecretError, Secret, redact, secret_from_env


def test_secret_is_masked_in_str_and_repr():
    secret = secret_from_env("HOOK_SECRET", "webhook signing", {"HOOK_SECRET": "s3cr3t-value"})
    assert secret.reveal() == "s3cr3t-value"
    assert "s3cr3t" not in str(secret) and "s3cr3t" not in repr(secret)
    assert "s3cr3t" not in f"{secret} {secret!r} {[secret]}"
    assert "HOOK_SECRET" in repr(secret)


def test_missing_secret_names_the_variable():
    with pytest.raises(MissingSecretError, match="HOOK_SECRET is not set"):
        secret_from_env("HOOK_SECRET", "webhook signing", {})


def test_redact_masks_every_secret_value():
    text = "POST failed: token=abc123 and again abc123; other=xyz"
    assert redact(text, [Secret("abc123"), Secret("xyz")]) == "POST failed: token=*** and again ***; other=***"
